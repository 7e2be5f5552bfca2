"""pytorch-grad-cam's faithfulness metrics on the kit's maps, for comparison with your own.

pytorch-grad-cam 1.5.7 ships perturbation metrics in ``pytorch_grad_cam.metrics``. Each takes the
normalised input (B, 3, H, W), the heatmaps as a NumPy array (B, H, W), one target object per
image and the model, and returns, per image, ``score(perturbed) - score(original)``:

- ``CamMultImageConfidenceChange``: the perturbed image is ``x * cam`` (keep what the map
  highlights, fade the rest). Higher is better: the highlighted pixels alone keep the class.
- ``ROADMostRelevantFirst(percentile)``: ROAD (Rong et al., "A Consistent and Efficient
  Evaluation Strategy for Attribution Methods", ICML 2022, https://arxiv.org/abs/2202.00449)
  replaces the pixels *above* the ``percentile``-th percentile of the map, not by a constant
  but by a noisy linear interpolation of their neighbours, so the model does not see a sharp
  "hole" it never saw in training. Lower (a larger drop) is better.
- ``ROADCombined(percentiles)``: the average over percentiles of (least-relevant-first minus
  most-relevant-first) / 2. Higher is better.

The wrappers below take torch tensors, score the *softmax probability* of each image's target
class (as the kit's deletion and insertion curves do), fix the imputation noise with ``seed``
without touching the global random state, emit no warnings (ROAD's NumPy 2 deprecation warning
is silenced), and return a float tensor (B,).
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from torch import nn

#: The percentiles pytorch-grad-cam's ROAD averages use by default.
ROAD_PERCENTILES = (10, 20, 30, 40, 50, 60, 70, 80, 90)


def _as_numpy_maps(maps) -> np.ndarray:
    array = maps.detach().float().cpu().numpy() if isinstance(maps, torch.Tensor) else np.asarray(maps)
    if array.ndim != 3:
        raise ValueError(f"expected heatmaps (B, H, W), got shape {array.shape}")
    return np.ascontiguousarray(array, dtype=np.float32)


def softmax_targets(targets, batch_size: int) -> list:
    """One ``ClassifierOutputSoftmaxTarget`` per image from B class indices (or one ``int``)."""
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget

    indices = torch.as_tensor(targets, dtype=torch.long).reshape(-1).expand(batch_size).tolist()
    return [ClassifierOutputSoftmaxTarget(index) for index in indices]


def _run_metric(metric, model: nn.Module, x: torch.Tensor, maps, targets, seed: int) -> torch.Tensor:
    cams = _as_numpy_maps(maps)
    if cams.shape[0] != x.shape[0] or cams.shape[1:] != tuple(x.shape[-2:]):
        raise ValueError(f"maps {cams.shape} do not match the images {tuple(x.shape)}: expected (B, H, W)")
    devices = [x.device.index or 0] if x.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices), warnings.catch_warnings():
        # ROAD's imputer calls np.argwhere on a torch tensor: NumPy 2 warns about it on every image.
        # The result is right; the warning would only fail a notebook test cell that writes to stderr.
        warnings.filterwarnings("ignore", message=r".*__array_wrap__ must accept context",
                                category=DeprecationWarning)
        torch.manual_seed(seed)
        scores = metric(x, cams, softmax_targets(targets, len(x)), model)
    return torch.as_tensor(np.asarray(scores, dtype=np.float32)).reshape(-1)


def cam_mult_image_confidence_change(model: nn.Module, x: torch.Tensor, maps, targets) -> torch.Tensor:
    """Per image: p(target | x * map) - p(target | x). Higher is better. Returns (B,)."""
    from pytorch_grad_cam.metrics.cam_mult_image import CamMultImageConfidenceChange

    return _run_metric(CamMultImageConfidenceChange(), model, x, maps, targets, seed=0)


def road_most_relevant_first(model: nn.Module, x: torch.Tensor, maps, targets, percentile: int = 80,
                             seed: int = 0) -> torch.Tensor:
    """Per image: change of p(target) after ROAD-imputing the pixels above the map's ``percentile``-th
    percentile (the top ``100 - percentile`` %). Lower is better. Returns (B,)."""
    from pytorch_grad_cam.metrics.road import ROADMostRelevantFirst

    return _run_metric(ROADMostRelevantFirst(percentile=percentile), model, x, maps, targets, seed)


def road_combined(model: nn.Module, x: torch.Tensor, maps, targets, percentiles=ROAD_PERCENTILES,
                  seed: int = 0) -> torch.Tensor:
    """Per image: pytorch-grad-cam's ``ROADCombined``, (LeRF - MoRF) / 2 averaged over ``percentiles``.
    Higher is better. Returns (B,)."""
    from pytorch_grad_cam.metrics.road import ROADCombined

    return _run_metric(ROADCombined(percentiles=list(percentiles)), model, x, maps, targets, seed)


def _library_curve(model: nn.Module, x: torch.Tensor, saliency, target, steps: int, baseline, insertion: bool):
    """The probability of each image's target class as the map's top pixels are removed (deletion) or
    put back into the baseline (insertion), with pytorch-grad-cam's ``RemoveMostRelevantFirst`` /
    ``RemoveLeastRelevantFirst`` at the percentiles ``100 * k / steps``."""
    from pytorch_grad_cam.metrics.perturbation_confidence import (PerturbationConfidenceMetric,
                                                                  RemoveLeastRelevantFirst, RemoveMostRelevantFirst)

    cams = _as_numpy_maps(saliency)
    targets = softmax_targets(target, len(x))
    fill_images = torch.as_tensor(baseline, dtype=x.dtype, device=x.device).expand_as(x)
    curve = torch.zeros(len(x), steps + 1)
    for b in range(len(x)):
        fill = fill_images[b].cpu()

        def imputer(image, keep, fill=fill):  # keep: 1 where the image stays, 0 where the baseline goes
            return image * keep + fill * (1 - keep)

        for k in range(steps + 1):
            fraction = k / steps  # removed (deletion) or inserted (insertion)
            if (fraction == 0 and not insertion) or (fraction == 1 and insertion):
                chosen = x[b:b + 1]
            elif (fraction == 1 and not insertion) or (fraction == 0 and insertion):
                chosen = fill_images[b:b + 1]
            else:
                chosen = None
            if chosen is not None:
                with torch.no_grad():
                    curve[b, k] = float(targets[b](model(chosen)[0]))
                continue
            perturbation = (RemoveLeastRelevantFirst(100 * fraction, imputer) if insertion
                            else RemoveMostRelevantFirst(100 * (1 - fraction), imputer))
            metric = PerturbationConfidenceMetric(perturbation)
            curve[b, k] = float(metric(x[b:b + 1], cams[b:b + 1], targets[b:b + 1], model, return_diff=False)[0])
    return curve.to(x.device)


def library_deletion_curve(model: nn.Module, x: torch.Tensor, saliency, target, steps: int = 16,
                           baseline=0.0) -> torch.Tensor:
    """A deletion curve (Petsiuk et al. 2018) from pytorch-grad-cam's ``RemoveMostRelevantFirst``.

    Same signature as Assignment 4's ``deletion_curve``: (B, steps + 1) probabilities of the
    target classes; column k after removing the map's top ``k / steps`` of the pixels (the
    library's percentile threshold: tied values go together) and filling them with ``baseline``.
    """
    return _library_curve(model, x, saliency, target, steps, baseline, insertion=False)


def library_insertion_curve(model: nn.Module, x: torch.Tensor, saliency, target, steps: int = 16,
                            baseline=0.0) -> torch.Tensor:
    """An insertion curve from pytorch-grad-cam's ``RemoveLeastRelevantFirst``: column k keeps the
    map's top ``k / steps`` of the pixels and shows ``baseline`` elsewhere. (B, steps + 1)."""
    return _library_curve(model, x, saliency, target, steps, baseline, insertion=True)


def library_area_under_curve(curve: torch.Tensor) -> torch.Tensor:
    """``torch.trapezoid`` of each row of ``curve`` (B, n) at the points x = 0, 1/(n-1), ..., 1. Returns (B,)."""
    points = torch.linspace(0.0, 1.0, curve.shape[-1], dtype=curve.dtype, device=curve.device)
    return torch.trapezoid(curve, x=points, dim=-1)
