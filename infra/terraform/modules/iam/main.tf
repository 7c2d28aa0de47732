# Service accounts with least privilege, each used through Workload Identity by one
# Kubernetes service account: nodes only log, monitor and pull images; tasks write the lake;
# MLflow writes its artifacts; Airflow reaches the database secrets. No keys are created.

locals {
  accounts = {
    nodes   = "GKE nodes: logs, metrics, image pulls"
    tasks   = "FruitOps task pods: the lake"
    mlflow  = "MLflow server: artifacts and its database"
    airflow = "Airflow components: metadata database"
    serving = "Online model server: reads the lake, records its answers there"
  }
  # Kubernetes service account → Google service account it acts as. The Airflow chart gives
  # each component a service account of its own (infra/deploy/airflow-values.yaml names
  # them); all of them act as the airflow account.
  airflow_components = [
    "airflow-scheduler", "airflow-api-server", "airflow-dag-processor", "airflow-triggerer",
    "airflow-worker", "airflow-migrate-database-job",
  ]
  workload_identity = merge(
    { "fruitops-tasks" = "tasks", "mlflow" = "mlflow", "fruitops-model-server" = "serving" },
    { for ksa in local.airflow_components : ksa => "airflow" },
  )
}

resource "google_service_account" "this" {
  for_each     = local.accounts
  account_id   = "${var.name}-${each.key}"
  display_name = each.value
}

resource "google_project_iam_member" "nodes" {
  for_each = toset([
    "roles/logging.logWriter",
    "roles/monitoring.metricWriter",
    "roles/monitoring.viewer",
    "roles/stackdriver.resourceMetadata.writer",
  ])
  project = var.project_id
  role    = each.value
  member  = "serviceAccount:${google_service_account.this["nodes"].email}"
}

resource "google_artifact_registry_repository_iam_member" "nodes_pull" {
  repository = var.registry_id
  location   = var.registry_region
  role       = "roles/artifactregistry.reader"
  member     = "serviceAccount:${google_service_account.this["nodes"].email}"
}

resource "google_storage_bucket_iam_member" "tasks_lake" {
  bucket = var.lake_bucket
  role   = "roles/storage.objectAdmin"
  member = "serviceAccount:${google_service_account.this["tasks"].email}"
}

# the model server reads the precision gate's held-out images and writes its answers
# (predictions/online/); models come through the MLflow server, not from its bucket
resource "google_storage_bucket_iam_member" "serving_lake" {
  bucket = var.lake_bucket
  role   = "roles/storage.objectAdmin"
  member = "serviceAccount:${google_service_account.this["serving"].email}"
}

resource "google_storage_bucket_iam_member" "airflow_lake_read" {
  bucket = var.lake_bucket
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${google_service_account.this["airflow"].email}"
}

resource "google_storage_bucket_iam_member" "mlflow_artifacts" {
  bucket = var.mlflow_bucket
  role   = "roles/storage.objectAdmin"
  member = "serviceAccount:${google_service_account.this["mlflow"].email}"
}

resource "google_project_iam_member" "sql_clients" {
  for_each = toset(["mlflow", "airflow"])
  project  = var.project_id
  role     = "roles/cloudsql.client"
  member   = "serviceAccount:${google_service_account.this[each.value].email}"
}

resource "google_service_account_iam_member" "workload_identity" {
  for_each           = local.workload_identity
  service_account_id = google_service_account.this[each.value].name
  role               = "roles/iam.workloadIdentityUser"
  member             = "serviceAccount:${var.project_id}.svc.id.goog[${var.k8s_namespace}/${each.key}]"
}
