"""infra/deploy: the Helm values and manifests use the gcp profile and Workload Identity."""

from __future__ import annotations

import yaml

from infra_checks import INFRA

DEPLOY = INFRA / "deploy"


def test_airflow_values_run_tasks_as_pods_of_the_task_image_on_cloud_sql():
    values = yaml.safe_load((DEPLOY / "airflow-values.yaml").read_text())
    env = {e["name"]: e["value"] for e in values["env"]}
    assert env["FRUITOPS_PROFILE"] == "gcp" and env["FRUITOPS_TASK_MODE"] == "kubernetes"
    assert env["FRUITOPS_LAKE_URI"].startswith("gs://")
    assert values["postgresql"]["enabled"] is False and values["data"]["metadataSecretName"]
    assert "iam.gke.io/gcp-service-account" in values["serviceAccount"]["annotations"]


def test_mlflow_manifest_serves_artifacts_from_gcs_with_no_key():
    docs = list(yaml.safe_load_all((DEPLOY / "mlflow.yaml").read_text()))
    kinds = [d["kind"] for d in docs]
    assert kinds.count("ServiceAccount") == 2 and "Deployment" in kinds and "Service" in kinds
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert any(a.startswith("--artifacts-destination=gs://") for a in container["args"])
    assert container["env"][0]["valueFrom"]["secretKeyRef"]["name"] == "mlflow-db-password"
    assert "AWS_SECRET_ACCESS_KEY" not in (DEPLOY / "mlflow.yaml").read_text()
