"""infra/deploy: the Helm values are the chart's own keys and use the gcp profile and Workload
Identity; the MLflow manifest reaches GCS with no key."""

from __future__ import annotations

import re

import hcl2
import pytest
import yaml

from infra_checks import INFRA

DEPLOY = INFRA / "deploy"
CHART = DEPLOY / "airflow-chart"
COMPONENTS = ("scheduler", "apiServer", "dagProcessor", "triggerer", "workers",
              "migrateDatabaseJob")  # fmt: skip


@pytest.fixture(scope="module")
def values() -> dict:
    return yaml.safe_load((DEPLOY / "airflow-values.yaml").read_text())


def key_paths(tree: dict, chart: dict, prefix: str = "") -> list[tuple[str, bool]]:
    """Each key ``tree`` sets, with whether the chart's values.yaml has it. A chart map that
    is empty by default (``annotations: {}``) takes any keys, so the walk stops there."""
    found = []
    for key, value in tree.items():
        path = f"{prefix}{key}"
        known = isinstance(chart, dict) and key in chart
        found.append((path, known))
        below = chart.get(key) if known else None
        if known and isinstance(value, dict) and isinstance(below, dict) and below:
            found += key_paths(value, below, f"{path}.")
    return found


def test_every_key_the_values_set_is_one_of_the_charts(values):
    chart = yaml.safe_load((CHART / "values.yaml").read_text())
    unknown = [path for path, known in key_paths(values, chart) if not known]
    assert unknown == [], f"not keys of the chart's values.yaml: {unknown}"
    assert "serviceAccount" not in values  # not a chart key: the chart sets one per component
    assert "webserverSecretKeySecretName" not in values  # Airflow 2's


def test_the_values_validate_against_the_charts_schema(run):
    result = run("check-jsonschema", "--schemafile", str(CHART / "values.schema.json"),
                 str(DEPLOY / "airflow-values.yaml"))  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_vendored_chart_files_keep_their_licence_and_source():
    assert "Apache License" in (CHART / "LICENSE").read_text()
    source = (CHART / "SOURCE.md").read_text()
    assert re.search(r"`[0-9a-f]{40}`", source) and "--version 1.22.0" in source
    assert "--version 1.22.0" in (DEPLOY / "airflow-values.yaml").read_text()
    assert "--version 1.22.0" in (DEPLOY / "README.md").read_text()


def test_airflow_3_secrets_and_version_match_the_image(values):
    assert values["apiSecretKeySecretName"] and values["jwtSecretName"]
    assert values["fernetKeySecretName"] and values["data"]["metadataSecretName"]
    image = (INFRA / "compose" / "Dockerfile.airflow").read_text()
    base = re.search(r"^FROM apache/airflow:([\d.]+)-python", image, re.M)[1]
    assert values["airflowVersion"] == values["defaultAirflowTag"] == base
    assert values["createUserJob"]["enabled"] is False  # its default user is admin/admin
    readme = (DEPLOY / "README.md").read_text()
    for secret, key in ((values["apiSecretKeySecretName"], "api-secret-key"),
                        (values["jwtSecretName"], "jwt-secret"),
                        (values["fernetKeySecretName"], "fernet-key"),
                        (values["data"]["metadataSecretName"], "connection")):  # fmt: skip
        made = rf"create secret generic {secret} (\\\n\s*)?--from-literal={key}="
        assert re.search(made, readme), secret


def test_each_component_has_a_workload_identity_account_that_terraform_binds(values):
    names = set()
    for component in COMPONENTS:
        account = values[component]["serviceAccount"]
        assert account["create"] is True, component
        annotation = account["annotations"]["iam.gke.io/gcp-service-account"]
        assert annotation == f"<workload_identity_annotations.{account['name']}>", component
        names.add(account["name"])
    iam = hcl2.loads((INFRA / "terraform/modules/iam/main.tf").read_text())
    (local_block,) = [b for b in iam["locals"] if "airflow_components" in b]
    assert {n.strip('"') for n in local_block["airflow_components"]} == names


def test_airflow_values_run_tasks_as_pods_of_the_task_image_on_cloud_sql(values):
    env = {e["name"]: e["value"] for e in values["env"]}
    assert env["FRUITOPS_PROFILE"] == "gcp" and env["FRUITOPS_TASK_MODE"] == "kubernetes"
    assert env["FRUITOPS_LAKE_URI"] == "<lake_uri>"  # gs://<bucket>, terraform's output
    assert values["postgresql"]["enabled"] is False and values["executor"] == "KubernetesExecutor"


def test_mlflow_manifest_serves_artifacts_from_gcs_with_no_key():
    docs = list(yaml.safe_load_all((DEPLOY / "mlflow.yaml").read_text()))
    kinds = [d["kind"] for d in docs]
    assert kinds.count("ServiceAccount") == 2 and "Deployment" in kinds and "Service" in kinds
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert "--artifacts-destination=<mlflow_artifacts_destination>" in container["args"]
    assert container["env"][0]["valueFrom"]["secretKeyRef"]["name"] == "mlflow-db-password"
    assert "AWS_SECRET_ACCESS_KEY" not in (DEPLOY / "mlflow.yaml").read_text()


def test_every_placeholder_is_a_terraform_output_and_the_stores_are_gcs():
    outputs = {}
    for item in hcl2.loads((INFRA / "terraform/outputs.tf").read_text())["output"]:
        for name, body in item.items():
            outputs[name.strip('"')] = str(body["value"])
    for name in ("airflow-values.yaml", *MANIFESTS, "README.md"):
        for placeholder in set(
            re.findall(r"<([a-z_]+)(?:\.[a-z-]+)?>", (DEPLOY / name).read_text())
        ):
            assert placeholder in outputs or placeholder == "region", (name, placeholder)
    assert "gs://" in outputs["lake_uri"]
    assert "gs://" in outputs["mlflow_artifacts_destination"]


MANIFESTS = ("mlflow.yaml", "model-server.yaml")


@pytest.mark.parametrize("name", MANIFESTS)
def test_every_manifest_is_valid_against_the_kubernetes_api_types(name):
    from k8s_schema import problems

    docs = list(yaml.safe_load_all((DEPLOY / name).read_text()))
    assert docs
    for doc in docs:
        assert problems(doc) == [], (name, doc["kind"])


def test_the_schema_check_catches_what_kubectl_would_refuse():
    from k8s_schema import problems

    doc = yaml.safe_load((DEPLOY / "model-server.yaml").read_text().split("---")[1])
    container = doc["spec"]["template"]["spec"]["containers"][0]
    container["readinessProbe"]["httpGet"]["pth"] = "/ping"  # a typo
    container["ports"][0]["containerPort"] = "5001"  # a string for an int
    del doc["spec"]["selector"]  # required
    found = problems(doc)
    assert any("pth: not a field" in p for p in found), found
    assert any("containerPort: int expected" in p for p in found), found
    doc = yaml.safe_load((DEPLOY / "model-server.yaml").read_text().split("---")[1])
    del doc["spec"]["selector"]
    assert any("selector" in p for p in problems(doc))


def test_the_model_server_serves_the_champion_with_probes_limits_and_workload_identity():
    docs = {d["kind"]: d for d in yaml.safe_load_all((DEPLOY / "model-server.yaml").read_text())}
    account = docs["ServiceAccount"]["metadata"]
    assert account["annotations"]["iam.gke.io/gcp-service-account"] == (
        f"<workload_identity_annotations.{account['name']}>"
    )
    pod = docs["Deployment"]["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == account["name"]
    (container,) = pod["containers"]
    assert container["args"][:2] == ["fruitops", "serve"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/ping"
    assert container["resources"]["requests"]["cpu"] and container["resources"]["limits"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["FRUITOPS_PROFILE"] == "gcp" and env["FRUITOPS_LAKE_URI"] == "<lake_uri>"
    assert (
        docs["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]["name"]
        == (docs["Deployment"]["metadata"]["name"])
    )
    assert (
        docs["Service"]["spec"]["selector"] == docs["Deployment"]["spec"]["selector"]["matchLabels"]
    )
    iam = hcl2.loads((INFRA / "terraform/modules/iam/main.tf").read_text())
    (local_block,) = [b for b in iam["locals"] if "workload_identity" in b]
    assert account["name"] in str(local_block["workload_identity"])
