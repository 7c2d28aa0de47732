"""The MLflow model registry: log and register a trained model, load it back, promote by alias.

The model is logged in the ``pt2`` format (``torch.export``): self-contained, so loading it
needs neither this package's classes nor pickle. Class names and the image size travel as
model metadata, so a scorer needs nothing but the model URI.
"""

from __future__ import annotations

import io
import shutil
import tempfile
import types
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, Schema
from mlflow.types.schema import Array, Object, Property

from fruitops_core.model_ref import ModelRef
from fruitops_core.tracking import CHAMPION_ALIAS, TrackedRun, Tracking
from fruitops_models.config import IMAGENET_MEAN, IMAGENET_STD
from fruitops_models.records import Evaluation

if TYPE_CHECKING:  # torch is imported where a model is logged or loaded, not by scorers
    import torch

INPUT_DESCRIPTION = "float32 RGB in [0, 1], NCHW, resized to image_size x image_size"
PHOTO_INPUT = (
    "a column 'image' of photo files (JPEG, PNG, WebP ... bytes; base64 in MLflow's JSON "
    "formats); each answer: label, confidence, top5, model_version, sha256, or error"
)
#: the registered pyfunc's loader (`mlflow.pyfunc.load_model` imports it by this name): the
#: serving package, where the photo rules and the predictor live
ONLINE_LOADER = "fruitops_serving.online_model"
#: the folder, inside the registered model's data, of the torch network (pt2)
NETWORK = "network"
PHOTO_SIGNATURE = ModelSignature(
    inputs=Schema([ColSpec("binary", "image")]),
    outputs=Schema(
        [
            ColSpec("string", "label", required=False),
            ColSpec("double", "confidence", required=False),
            ColSpec(
                Array(Object([Property("label", "string"), Property("probability", "double")])),
                "top5",
                required=False,
            ),
            ColSpec("long", "model_version", required=False),
            ColSpec("string", "sha256", required=False),
            ColSpec("string", "error", required=False),
        ]
    ),
)


def log_and_register(
    model: torch.nn.Module,
    classes: list[str],
    image_size: int,
    example: torch.Tensor,
    run: TrackedRun,
    arch: str,
) -> dict[str, Any]:
    """Log ``model`` to ``run`` and register it; return its URI and version.

    A run continued after a failed try keeps the version it already registered.
    """
    import torch
    from mlflow.models import infer_signature

    if example.shape[0] < 2:
        raise ValueError("the input example needs at least 2 images (pt2 export traces batch>1)")
    client, name = run.tracking.client, run.tracking.registered_model
    earlier = client.search_model_versions(f"name = '{name}' and run_id = '{run.run_id}'")
    if earlier:
        mv = min(earlier, key=lambda v: int(v.version))
        return _registered(mv.name, int(mv.version), mv.source)
    model.eval()
    example_np = example[:2].float().numpy().astype(np.float32)  # [0, 1] pixels
    with torch.no_grad():
        output = model(torch.from_numpy(example_np)).numpy()
    with tempfile.TemporaryDirectory(prefix="fruitops-log-") as tmp:
        network = Path(tmp) / NETWORK
        mlflow.pytorch.save_model(
            model,
            network,
            serialization_format="pt2",
            signature=infer_signature(example_np, output),
            input_example=example_np,
            pip_requirements=[torch_pin()],
        )
        metadata = {
            "classes": classes,
            "image_size": image_size,
            "normalisation": {**_normalisation(model), "inside_model": True},
            "arch": arch,
        }
        return _register_photo_model(network, metadata, example_np, run)


def _register_photo_model(
    network: Path, metadata: dict[str, Any], example_np: np.ndarray, run: TrackedRun
) -> dict[str, Any]:
    """Log the pyfunc that takes photos, with ``network`` (a saved pt2 model) as its data,
    to ``run``; register it. `mlflow models serve` serves it as it is."""
    tracking = run.tracking
    client, name = tracking.client, tracking.registered_model
    info = run.log_model(
        mlflow.pyfunc,
        name="model",
        loader_module=ONLINE_LOADER,
        data_path=str(network),
        signature=PHOTO_SIGNATURE,
        # two photos: MLflow answers them with the logged pyfunc before registering it
        input_example=pd.DataFrame({"image": [png(image) for image in example_np]}),
        registered_model_name=name,
        pip_requirements=[torch_pin()],
        metadata={**metadata, "input": PHOTO_INPUT, "network_input": INPUT_DESCRIPTION},
    )
    version = int(info.registered_model_version)
    client.set_model_version_tag(name, str(version), "arch", metadata["arch"])
    crown_if_first(tracking, version, list(metadata["classes"]))
    return _registered(name, version, info.model_uri)


def torch_pin() -> str:
    """The installed torch, as the logged models' requirement."""
    from importlib.metadata import version

    return f"torch=={version('torch').split('+')[0]}"


def png(image: np.ndarray) -> bytes:
    """A 3×H×W float image in [0, 1] as PNG bytes: a photo the registered pyfunc takes."""
    from PIL import Image

    pixels = (image.transpose(1, 2, 0) * 255).round().clip(0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def _normalisation(model: Any) -> dict[str, list[float]]:
    """The mean and std the model normalises with (ImageNet's, or Lite's 127/128 scaling)."""
    if hasattr(model, "normalisation"):
        return model.normalisation()
    return {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)}


def crown_if_first(tracking: Tracking, version: int, classes: list[str]) -> bool:
    """Make ``version`` champion at once when there is none, or when the champion knows other
    classes (it was trained on another data set and cannot name these fruit): a first model
    is usable right away. Later ones wait for promotion. Returns whether it was crowned."""
    client, name = tracking.client, tracking.registered_model
    current = tracking.champion()
    if current is None:
        reason = "the first model registered becomes champion"
    else:
        known = tracking.model_info(ModelRef.pinned(name, current.version).uri).metadata or {}
        if list(known.get("classes", [])) == list(classes):
            return False
        reason = f"champion v{current.version} was trained on other classes: replaced at once"
    crown(client, name, version, int(current.version) if current else None, reason)
    client.set_model_version_tag(name, str(version), "promotion.promoted", "True")
    client.set_model_version_tag(name, str(version), "promotion.reason", reason)
    client.set_model_version_tag(name, str(version), WEIGHED_TAG, "registration")
    return True


def crown(client: Any, name: str, version: int, previous: int | None, reason: str) -> None:
    """Move the champion alias to ``version``; the version it leaves says so and why."""
    client.set_registered_model_alias(name, CHAMPION_ALIAS, str(version))
    if previous is not None and previous != version:
        client.set_model_version_tag(
            name, str(previous), "promotion.reason", f"champion until v{version}: {reason}"
        )


#: tag of every version a promotion has weighed (value: the champion it was weighed against)
WEIGHED_TAG = "promotion.weighed_against"


def pending_candidates(client: Any, name: str, champion_version: int | None) -> list[dict]:
    """Versions registered after the champion that no promotion has weighed yet: what
    separate `fruitops train` commands left for `fruitops models promote`."""
    versions = client.search_model_versions(f"name = '{name}'")
    return [
        {"version": int(mv.version), "arch": mv.tags.get("arch", "?")}
        for mv in sorted(versions, key=lambda v: int(v.version))
        if WEIGHED_TAG not in mv.tags
        and (champion_version is None or int(mv.version) > champion_version)
    ]


def _registered(name: str, version: int, logged_model_uri: str) -> dict[str, Any]:
    """What `log_and_register` reports of a registered version."""
    return {
        "model_uri": ModelRef.pinned(name, version).uri,
        "logged_model_uri": logged_model_uri,
        "name": name,
        "version": version,
    }


def promote_if_better(tracking: Tracking, evaluation: Evaluation, margin: float) -> dict[str, Any]:
    """Give the best candidate the champion alias if its macro-F1 beats the champion's by
    ``margin`` on the same split (``evaluation`` is the models/model_evaluation value).

    The first model becomes champion. The decision and both scores are recorded as tags on
    the candidate version.
    """
    client, name = tracking.client, tracking.registered_model
    best, champion = evaluation.best_candidate, evaluation.champion
    split = evaluation.split
    if champion is None:
        promoted, reason = True, "no champion yet: the first model becomes champion"
    elif champion.version == best.version:
        promoted, reason = True, f"v{best.version} is already champion"
    else:
        promoted = best.macro_f1 > champion.macro_f1 + margin
        verdict = "beats" if promoted else "does not beat"
        reason = (
            f"v{best.version} ({best.arch}) {split} macro-F1 {best.macro_f1:.4f} "
            f"{verdict} champion v{champion.version} {champion.macro_f1:.4f} "
            f"by more than {margin}"
        )
    if promoted:
        crown(client, name, best.version, champion.version if champion else None, reason)
    decision = {
        "promoted": promoted,
        "reason": reason,
        "split": split,
        "candidate_version": best.version,
        "candidate_score": best.macro_f1,
        "previous_champion_version": champion.version if champion else None,
        "previous_champion_score": champion.macro_f1 if champion else None,
    }
    if champion is None or champion.version != best.version:
        # (the champion weighed against itself decides nothing: its tags keep why it won)
        for key in ("promoted", "reason", "split", "candidate_score", "previous_champion_score"):
            client.set_model_version_tag(
                name, str(best.version), f"promotion.{key}", str(decision[key])
            )
    against = str(champion.version) if champion else "none"
    for score in evaluation.scores:
        if score.role == "candidate":
            client.set_model_version_tag(name, str(score.version), WEIGHED_TAG, against)
    return decision


class ModelNotFound(ValueError):
    """The model URI names nothing in the registry; the message says how to get one."""


class LoadedModel:
    """A registered model's metadata, and its torch module loaded on first use: a scorer that
    finds the model already compiled (OpenVINO's cache) never pays for loading the pt2."""

    def __init__(
        self,
        module: Any,
        classes: list[str],
        image_size: int,
        name: str,
        version: int,
        run_id: str,
        uri: str,
    ):
        self._module = module  # the module, or a function that loads it
        self.classes, self.image_size = classes, image_size
        self.name, self.version, self.run_id, self.uri = name, version, run_id, uri

    @property
    def pinned_uri(self) -> str:
        """``models:/NAME/VERSION``, however the model was named (an alias)."""
        return ModelRef.pinned(self.name, self.version).uri

    @property
    def module(self) -> Any:
        if isinstance(self._module, types.FunctionType):  # the loader, not yet called
            self._module = self._module()
        return self._module


def load_model(tracking: Tracking, model_uri: str) -> LoadedModel:
    """Load a registered model (``models:/name@alias`` or ``models:/name/version``)."""
    ref = ModelRef.parse(model_uri)
    name, client = ref.name, tracking.client
    try:
        mv = (
            client.get_model_version_by_alias(name, ref.alias)
            if ref.alias
            else client.get_model_version(name, str(ref.version))
        )
    except MlflowException as err:
        raise ModelNotFound(
            f"{model_uri} does not exist in the registry at {tracking.uri}: "
            "train and promote a model first (fruitops train, fruitops models promote) or "
            "pass --model models:/NAME/VERSION"
        ) from err
    pinned = ModelRef.pinned(name, mv.version).uri
    info = tracking.model_info(pinned)
    metadata = info.metadata or {}
    if "classes" not in metadata or "image_size" not in metadata:
        raise ValueError(
            f"{pinned} lacks class names or image size in its metadata: "
            "it was not logged by fruitops; retrain it with fruitops"
        )
    return LoadedModel(
        lambda: load_network(tracking, pinned, info.flavors),
        list(metadata["classes"]),
        int(metadata["image_size"]),
        name,
        int(mv.version),
        mv.run_id,
        model_uri,
    )


def load_network(tracking: Tracking, model_uri: str, flavors: dict[str, Any]) -> Any:
    """The torch network of a registered version: inside its pyfunc's data, or (versions
    logged before the pyfunc) the pytorch model itself."""
    if "pytorch" in flavors:
        return tracking.load_pytorch(model_uri)
    with tempfile.TemporaryDirectory(prefix="fruitops-network-") as tmp:
        return network_at(tracking.download(model_uri, tmp))


def network_at(model_dir: Path) -> Any:
    """The torch network inside a downloaded registered model (its folder holds MLmodel):
    a local folder, so no tracking store is involved."""
    return mlflow.pytorch.load_model(str(model_dir / "data" / NETWORK), map_location="cpu")


def takes_photos(info: Any) -> bool:
    """Whether a registered version (its `ModelInfo`) is the photo-taking pyfunc."""
    pyfunc = (info.flavors or {}).get("python_function", {})
    return pyfunc.get("loader_module") == ONLINE_LOADER


def register_for_photos(tracking: Tracking, version: int) -> dict[str, Any]:
    """Register ``version`` (logged before versions took photos: a pt2 taking tensors) again,
    the same network and metadata as a new version that takes photos; the champion alias
    follows it if ``version`` held it. Returns the new version's `_registered` record."""
    name, client = tracking.registered_model, tracking.client
    pinned = ModelRef.pinned(name, version).uri
    try:
        client.get_model_version(name, str(version))
    except MlflowException as err:
        raise ValueError(
            f"{name} has no version {version} at {tracking.uri}: `fruitops models list` "
            "shows the versions there"
        ) from err
    info = tracking.model_info(pinned)
    if takes_photos(info):  # nothing to do: said so, not an error (a re-run is harmless)
        return {**_registered(name, version, pinned), "unchanged": True}
    old = load_model(tracking, pinned)
    metadata = {k: v for k, v in (info.metadata or {}).items() if k != "input"}
    example = np.random.default_rng(0).random((2, 3, old.image_size, old.image_size))
    with (
        tempfile.TemporaryDirectory(prefix="fruitops-upgrade-") as tmp,
        tracking.start_run(kind="register", run_name=f"v{version}-takes-photos") as run,
    ):
        # the logged pt2 model as it is: the same bytes, inside the new version
        downloaded = tracking.download(pinned, Path(tmp) / "download")
        network = Path(tmp) / NETWORK  # the folder name `network_at` reads
        shutil.copytree(downloaded, network)
        run.set_tags({"fruitops.registered_again_from": pinned})
        source = tracking.client.get_run(info.run_id).data  # the same network: its scores
        run.log_params(source.params)
        run.log_metrics(source.metrics)
        new = _register_photo_model(network, metadata, example.astype(np.float32), run)
    for key, value in client.get_model_version(name, str(version)).tags.items():
        if key.startswith(("promotion.", "arch", "card")):
            client.set_model_version_tag(name, str(new["version"]), key, value)
    champion = tracking.champion()
    if champion is not None and int(champion.version) == version:
        reason = f"v{new['version']} is v{version} registered again to take photos"
        crown(client, name, new["version"], version, reason)
    return new
