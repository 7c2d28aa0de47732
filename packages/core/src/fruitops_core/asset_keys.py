"""The asset graph's keys, declared once (like Airflow's ``Asset`` objects in
``example_assets.py``): the asset that produces a value and every asset, command, DAG and
demo that reads it name the same constant, so a key cannot be misspelt in one place.

They live in core because the demo, the CLIs and the DAGs name assets of every package;
each package's `assets` module declares the asset itself (`fruitops_core.assets.asset`).
"""

from __future__ import annotations

from typing import Final

# data: photos in, checked, cached for training
RAW_IMAGES: Final = "data/raw_images"
IMAGE_MANIFEST: Final = "data/image_manifest"
DATA_VALIDATION: Final = "data/data_validation"
CLASS_MAPPING: Final = "data/class_mapping"
TRAINING_CACHE: Final = "data/training_cache"
INCOMING_BATCH: Final = "data/incoming_batch"
# models: trained, evaluated, promoted, reported
TRAINED_MODEL: Final = "models/trained_model"
MODEL_EVALUATION: Final = "models/model_evaluation"
CHAMPION_MODEL: Final = "models/champion_model"
TRAINING_REPORT: Final = "models/training_report"
# serving: the precision the champion may run at, and its answers for a batch
PRECISION_GATE: Final = "serving/precision_gate"
BATCH_PREDICTIONS: Final = "serving/batch_predictions"
# monitoring: what the champion saw in training, and how a batch drifted from it
REFERENCE_PROFILE: Final = "monitoring/reference_profile"
DRIFT_REPORT: Final = "monitoring/drift_report"
