"""The registered model as MLflow serves it: photos in, labels out.

Every version FruitOps registers is a pyfunc whose loader is this module (`_load_pyfunc`),
with the torch network as its data (`fruitops_models.registry`). So plain MLflow serves it
as it is (``mlflow models serve -m models:/fruit-classifier@champion --env-manager local``),
and `fruitops serve` loads the same pyfunc. Inside, the same rules as batch scoring: photos
decoded by `fruitops_data.images.try_decode`, scored by a `Predictor` in the precision the
gate allowed (`fruitops_serving.gate.choose_predictor`), answered by
`fruitops_serving.answers`. So a photo gets the same answer online as in a batch.

A photo that cannot be used gets its ``error``; the other photos of the request are
answered. The model answers one request at a time (`Batcher`), on a share of the cores
(`ServingConfig.threads`), while the others decode the next photos and answer HTTP: merging
concurrent requests into batches left the model waiting between batches (int8 on one of 2
cores: 310 photos/s merging up to 4, 450 one request at a time; ``bench_online.py``'s load).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import queue
import re
import threading
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INTERNAL_ERROR

from fruitops_serving.answers import answers
from fruitops_serving.config import ServingConfig, setting_name
from fruitops_serving.predictor import ONLINE_HINT, Predictor
from fruitops_serving.records import Verdict

log = logging.getLogger(__name__)

IMAGE_COLUMN = "image"
ANSWER_COLUMNS = ["label", "confidence", "top5", "model_version", "sha256", "error"]


def bad_request(message: str) -> MlflowException:
    """An error MLflow's scoring server answers as a 400 JSON (a plain exception would be
    answered with its traceback)."""
    return MlflowException.invalid_parameter_value(message)


class Batcher:
    """Runs the model for every caller in one thread, the photos of concurrent calls merged
    into one batch up to ``max_images`` (`ServingConfig.max_batch`).

    The predictor is not safe to call from several threads at once (OpenVINO's infer
    requests), so every call waits here and the thread takes its turn for it."""

    def __init__(self, run: Callable[[np.ndarray], np.ndarray], max_images: int):
        self._run, self._max = run, max_images
        self._queue: queue.Queue[tuple[np.ndarray, Future] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="fruitops-batcher", daemon=True)
        self._thread.start()

    def __call__(self, images: np.ndarray) -> np.ndarray:
        done: Future = Future()
        self._queue.put((images, done))
        return done.result()

    def close(self) -> None:
        """Stop the thread once the calls already queued are answered, and wait for it:
        OpenVINO's objects must not outlive it into interpreter shutdown (a crash there)."""
        self._queue.put(None)
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=60)

    def _loop(self) -> None:
        while (first := self._queue.get()) is not None:
            batch, count, closing = [first], len(first[0]), False
            while count < self._max:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    closing = True
                    break
                batch.append(item)
                count += len(item[0])
            try:
                out = self._run(np.concatenate([images for images, _ in batch]))
            except Exception as err:  # each caller gets the error, the thread lives on
                for _, done in batch:
                    done.set_exception(err)
            else:
                start = 0
                for images, done in batch:
                    done.set_result(out[start : start + len(images)])
                    start += len(images)
            if closing:
                return


#: text that is base64 and nothing else; no photo format starts so (JPEG: FF D8, PNG: 89 50)
BASE64_TEXT = re.compile(rb"[A-Za-z0-9+/]+={0,2}\s*")


def photo_bytes(value: Any) -> bytes | str:
    """A photo's bytes, or why there are none. MLflow decodes the base64 of its
    ``dataframe_*`` formats (the signature says binary) but hands ``inputs``/``instances``
    on as the base64 text's bytes; a caller who skipped the schema may send text. Bytes
    that only look like base64 (a decoded text file saying "hello") stay as they are, and
    decoding them says they are no image."""
    if isinstance(value, str):
        value = value.encode("ascii", errors="replace")
    if not isinstance(value, bytes | bytearray | memoryview):
        return f"expected the photo's bytes, got {type(value).__name__}"
    data = bytes(value)
    if BASE64_TEXT.fullmatch(data):
        try:
            return base64.b64decode(data, validate=False)
        except (binascii.Error, ValueError):
            return data
    return data


class OnlineModel:
    """A registered version ready to answer photos (what `mlflow.pyfunc.load_model` returns
    inside its PyFuncModel)."""

    def __init__(self, predictor: Predictor, gate: Verdict, config: ServingConfig):
        self.predictor, self.gate, self.config = predictor, gate, config
        self.model = predictor.model
        self._batcher = Batcher(predictor.probabilities_nhwc, config.max_batch)

    @property
    def version(self) -> int | None:
        return self.model.version or None

    def close(self) -> None:
        self._batcher.close()

    def get_raw_model(self) -> OnlineModel:
        """What `PyFuncModel.get_raw_model` hands `fruitops serve`."""
        return self

    def predict(self, model_input: Any, params: dict[str, Any] | None = None) -> pd.DataFrame:
        """One answer row per photo of ``model_input`` (a frame with an ``image`` column)."""
        photos = [photo_bytes(value) for value in request_photos(model_input)]
        return pd.DataFrame(self.predict_photos(photos), columns=ANSWER_COLUMNS)

    def predict_photos(self, photos: list[bytes | str]) -> list[dict[str, Any]]:
        """An answer per photo (its bytes, or why it has none), in order: label,
        confidence, top5, or the photo's error."""
        if len(photos) > self.config.max_photos:
            raise bad_request(
                f"{len(photos)} photos in one request: at most {self.config.max_photos} "
                f"(setting {setting_name('max_photos')}); send them in several requests"
            )
        try:
            return self._answer(photos)
        except Exception as err:  # the server's fault, not the photo's: said, no traceback
            log.exception("scoring failed")
            raise MlflowException(f"scoring failed: {err}", INTERNAL_ERROR) from None

    def _answer(self, photos: list[bytes | str]) -> list[dict[str, Any]]:
        from fruitops_data.images import try_decode

        rows: list[dict[str, Any]] = []
        pixels: list[np.ndarray] = []
        for data in photos:
            row: dict[str, Any] = dict.fromkeys(ANSWER_COLUMNS)
            row["model_version"] = self.version
            if isinstance(data, str):
                row["error"] = data
            else:
                row["sha256"] = hashlib.sha256(data).hexdigest()
                decoded = try_decode(data, self.model.image_size)
                if decoded.image is None:
                    row["error"] = decoded.error
                else:
                    pixels.append(np.asarray(decoded.image, dtype=np.uint8))
            rows.append(row)
        if pixels:
            answered = answers(self.model.classes, self._batcher(np.stack(pixels)))
            good = (row for row in rows if row["error"] is None)
            for i, row in enumerate(good):
                row["label"] = answered.labels[i]
                row["confidence"] = float(answered.confidences[i])
                row["top5"] = answered.top5[i]
        return rows


def request_photos(model_input: Any) -> list[Any]:
    """The photos of a request: the ``image`` column (or the only column) of a frame, or a
    list of photos."""
    if isinstance(model_input, pd.DataFrame):
        if IMAGE_COLUMN in model_input.columns:
            return model_input[IMAGE_COLUMN].tolist()
        if len(model_input.columns) == 1:
            return model_input.iloc[:, 0].tolist()
        raise bad_request(
            f"expected a column {IMAGE_COLUMN!r} of photos, got {list(model_input.columns)}"
        )
    if isinstance(model_input, dict) and IMAGE_COLUMN in model_input:
        return list(model_input[IMAGE_COLUMN])
    if isinstance(model_input, list | tuple):
        return list(model_input)
    raise bad_request(f"expected a frame with a column {IMAGE_COLUMN!r} of photos")


def load_online(model_dir: Path, config: ServingConfig | None = None) -> OnlineModel:
    """The version in ``model_dir`` (a downloaded registered model) ready to answer photos,
    in the precision the gate allowed for it."""
    from mlflow.models import Model

    from fruitops_core.lake import open_lake
    from fruitops_core.model_ref import ModelRef
    from fruitops_core.settings import FruitOpsSettings
    from fruitops_core.tracking import Tracking
    from fruitops_models.registry import LoadedModel, network_at
    from fruitops_serving.gate import choose_predictor

    config = config or ServingConfig()
    settings = FruitOpsSettings()
    tracking = Tracking(settings)
    meta = Model.load(str(model_dir / "MLmodel"))
    metadata = meta.metadata or {}
    name, version = _registered(tracking.registered_model, meta.run_id)
    model = LoadedModel(
        lambda: network_at(model_dir),
        list(metadata["classes"]),
        int(metadata["image_size"]),
        name,
        version or 0,
        meta.run_id,
        ModelRef.pinned(name, version).uri if version else str(model_dir),
    )
    cache, fp32_threads = settings.local_cache / "openvino", config.threads("fp32")
    if version is None:  # MLflow checking the input example as it logs: no verdict yet
        reason = "not a registered version (no precision gate verdict): fp32"
        predictor = Predictor(
            model, backend="openvino", cache_dir=cache, hint=ONLINE_HINT, threads=fp32_threads
        )
        gate = Verdict(reason=reason)
    else:
        try:
            predictor, gate = choose_predictor(
                model,
                open_lake(settings),
                settings,
                backend="openvino",
                tracking=tracking,
                hint=ONLINE_HINT,
                threads=config.threads,
            )
        except Exception as err:  # no lake or gate here: fp32 is always allowed
            reason = f"the precision gate could not be read ({err}): fp32"
            log.warning(reason)
            predictor = Predictor(
                model, backend="openvino", cache_dir=cache, hint=ONLINE_HINT, threads=fp32_threads
            )
            gate = Verdict(reason=reason)
    log.info(
        "serving %s (%s %s, %d classes)",
        model.uri,
        predictor.backend,
        predictor.precision,
        len(model.classes),
    )
    return OnlineModel(predictor, gate, config)


def _registered(name: str, run_id: str | None) -> tuple[str, int | None]:
    """The registered name and version logged by ``run_id``, asked of the registry MLflow
    loaded the model from; no version when it cannot say (answers then carry none)."""
    import mlflow

    try:
        versions = mlflow.MlflowClient().search_model_versions(f"run_id = '{run_id}'")
    except Exception as err:
        log.warning("the registry cannot name this model's version: %s", err)
        return name, None
    ours = [mv for mv in versions if mv.name == name] or list(versions)
    if not ours:
        return name, None
    first = min(ours, key=lambda mv: int(mv.version))
    return first.name, int(first.version)


def _load_pyfunc(data_path: str) -> OnlineModel:
    """MLflow's entry point (the pyfunc flavor's loader): ``data_path`` is the network's
    folder inside the downloaded model."""
    return load_online(Path(data_path).parent.parent)
