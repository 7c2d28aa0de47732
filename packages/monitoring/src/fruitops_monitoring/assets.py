"""Assets of the ``monitoring/`` group.

reference_profile: the features of the held-out split as the champion sees them (image
features, predictions, embedding components with the projection fitted here), stored with
the champion's version and rebuilt when the champion changes. drift_report: the scored
batch against that profile in an Evidently report, and the drift decision a DAG acts on.
"""

from __future__ import annotations

from fruitops_core.asset_keys import (
    BATCH_PREDICTIONS,
    CHAMPION_MODEL,
    DRIFT_REPORT,
    IMAGE_MANIFEST,
    REFERENCE_PROFILE,
)
from fruitops_core.assets import AssetContext, asset, record
from fruitops_core.model_ref import ModelRef
from fruitops_core.tables import ParquetTable
from fruitops_models.records import Champion
from fruitops_monitoring.config import DriftConfig, ReferenceConfig
from fruitops_monitoring.drift_run import run_drift
from fruitops_monitoring.records import DriftResult, ReferenceProfile
from fruitops_monitoring.reference import build_reference
from fruitops_serving.config import online_folder
from fruitops_serving.records import ScoredBatch


@asset(
    REFERENCE_PROFILE,
    deps=[IMAGE_MANIFEST, CHAMPION_MODEL],
    config=ReferenceConfig,
    io=record(ReferenceProfile),
)
def reference_profile(
    ctx: AssetContext[ReferenceConfig],
    image_manifest: ParquetTable,
    champion_model: Champion,
) -> ReferenceProfile:
    """Features of the held-out split scored by the champion; reused while neither changes."""
    result = build_reference(
        ctx.lake,
        ctx.tracking,
        image_manifest,
        champion_model.model_uri,
        ctx.config,
        ctx.workdir,
    )
    ctx.add_metadata(
        reused=result.reused,
        rows=result.rows,
        model_uri=result.model_uri,
        source=image_manifest.meta.get("source"),  # the data set the champion is watched on
    )
    return result


@asset(
    DRIFT_REPORT,
    deps=[BATCH_PREDICTIONS, REFERENCE_PROFILE, IMAGE_MANIFEST],
    config=DriftConfig,
    io=record(DriftResult),
)
def drift_report(
    ctx: AssetContext[DriftConfig],
    batch_predictions: ScoredBatch,
    reference_profile: ReferenceProfile | None,
    image_manifest: ParquetTable | None,
) -> DriftResult:
    """Evidently drift of the scored batch against the reference, and the drift decision.

    A batch scored by another model version than the reference's gets a reference built for
    that version first (or found, kept per version): features are only comparable under the
    same model. `fruitops monitor drift` runs this function too (`run_asset`), on the table it
    is given and no stored reference (None: the batch's version's, built on first use).
    """
    reference = reference_profile
    batch = batch_predictions
    batch_model = ModelRef.parse(batch.model_uri).at(batch.model_version).uri
    predictions_uri = batch_predictions.predictions_uri
    if ctx.config.online_day:
        # a day of online answers, by whichever versions served that day: its photos'
        # features are computed under the reference's model (the champion's), as a batch's
        predictions_uri = ctx.lake.uri(online_folder(ctx.config.online_day)) + "/"
        batch_model = reference.model_uri if reference else batch_model
    if reference is None or reference.model_uri != batch_model:
        if reference is not None:
            ctx.log.warning(
                "reference was built with %s, the batch was scored by %s: using that "
                "version's reference",
                reference.model_uri,
                batch_model,
            )
        if image_manifest is None:
            raise ValueError(
                "no data set to build a reference from: run `fruitops data ingest SOURCE` "
                "first, or pass --reference"
            )
        split = reference.split if reference else ReferenceConfig().split
        reference = build_reference(
            ctx.lake,
            ctx.tracking,
            image_manifest,
            batch_model,
            ReferenceConfig(split=split),
            ctx.workdir,
        )
    result = DriftResult(
        **run_drift(
            ctx.lake,
            ctx.settings,
            ctx.tracking,
            predictions_uri,
            reference,
            ctx.config,
            ctx.config.folder or ctx.asset_dir,
            ctx.workdir,
            f"drift-{ctx.run_id}",
        )
    )
    ctx.add_metadata(
        dataset_drift=result.dataset_drift,
        drift_share=result.drift_share,
        drifted_columns=result.drifted_columns,
        report_html_uri=result.report_html_uri,
        predictions_uri=predictions_uri,
        reference_rebuilt=reference is not reference_profile,
    )
    return result
