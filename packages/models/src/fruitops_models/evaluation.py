"""Scoring registered model versions on one split of the training cache.

The candidates are this run's models plus every version registered after the champion that
no promotion has weighed yet (`registry.pending_candidates`), so candidates trained by
separate commands are compared together.

Candidates and the current champion are loaded the way serving loads them (the logged pt2
model and its metadata) and compared by class *name*, so a champion trained on another class
list or image size is still scored fairly on the same images.
"""

from __future__ import annotations

import numpy as np
import torch

from fruitops_core.lake import Lake
from fruitops_core.model_ref import ModelRef
from fruitops_core.settings import FruitOpsSettings
from fruitops_core.tracking import Tracking
from fruitops_data.cache import CachedSplit, open_split
from fruitops_data.records import TrainingCache
from fruitops_models.augment import resize
from fruitops_models.metrics import confusion_matrix, macro_f1
from fruitops_models.records import Candidate, Evaluation, ModelScore
from fruitops_models.registry import load_model, pending_candidates


def predict_names(
    tracking: Tracking, uri: str, data: CachedSplit, batch_size: int = 32
) -> list[str]:
    """Class names predicted by the model at ``uri`` for every image of ``data``."""
    model = load_model(tracking, uri)
    classes, size, module = model.classes, model.image_size, model.module
    names: list[str] = []
    with torch.no_grad():
        for start in range(0, len(data), batch_size):
            idx = np.arange(start, min(start + batch_size, len(data)))
            x = resize(torch.from_numpy(data.take(idx)).float().div_(255.0), size)
            names += [classes[i] for i in module(x).argmax(1).tolist()]
    return names


def score_names(true: list[str], predicted: list[str]) -> dict[str, float]:
    vocabulary = {name: i for i, name in enumerate(sorted(set(true) | set(predicted)))}
    confusion = confusion_matrix(
        np.array([vocabulary[t] for t in true], np.int64),
        np.array([vocabulary[p] for p in predicted], np.int64),
        len(vocabulary),
    )
    accuracy = (
        float(np.mean([t == p for t, p in zip(true, predicted, strict=True)])) if true else 0.0
    )
    return {"accuracy": accuracy, "macro_f1": macro_f1(confusion)}


def best_candidate(scores: list[ModelScore], this_run: set[int]) -> ModelScore:
    """The best-scoring candidate (the older version on a tie). A champion that is one of
    this run's models (crowned at registration) is weighed with them, so the report names
    the run's best model, not its runner-up."""
    weighed = [s for s in scores if s.role == "candidate" or s.version in this_run]
    return max(weighed or scores, key=lambda s: (s.macro_f1, -s.version))


def score_versions(
    settings: FruitOpsSettings,
    tracking: Tracking,
    lake: Lake,
    cache: TrainingCache,
    candidates: list[Candidate],
    split: str,
) -> Evaluation:
    """Scores of every candidate and of the champion on ``split``; the best candidate."""
    data = open_split(lake, cache, split, settings.local_cache)
    if len(data) == 0:
        raise ValueError(
            f"the {split} split of the training cache is empty: nothing to "
            "evaluate the candidates on"
        )
    true = [cache.classes[i] for i in data.labels]
    name = tracking.registered_model
    champion = tracking.champion()
    champion_version = int(champion.version) if champion is not None else None
    roles = {c.version: ("candidate", c.arch) for c in candidates}
    for pending in pending_candidates(tracking.client, name, champion_version):
        roles.setdefault(pending["version"], ("candidate", pending["arch"]))
    if champion is not None:  # scored once, as champion, even when also a candidate
        roles[champion_version] = ("champion", champion.tags.get("arch", "?"))
    scores = []
    for version, (role, arch) in roles.items():
        predicted = predict_names(tracking, ModelRef.pinned(name, version).uri, data)
        scores.append(
            ModelScore(version=version, role=role, arch=arch, **score_names(true, predicted))
        )
    best = best_candidate(scores, {c.version for c in candidates})
    champion_score = None
    if champion is not None:
        champion_score = next(s for s in scores if s.version == int(champion.version))
    judged = sorted(set(true))
    return Evaluation(
        split=split,
        images=len(data),
        # the classes the choice rests on: a class without photos in the split is not weighed
        classes_judged=len(judged),
        classes_total=len(cache.classes),
        classes_missing=sorted(set(cache.classes) - set(judged)),
        scores=scores,
        best_candidate=best,
        champion=champion_score,
    )
