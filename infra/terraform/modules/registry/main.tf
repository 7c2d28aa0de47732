# Docker repository for the FruitOps images (task, Airflow, MLflow).

resource "google_artifact_registry_repository" "this" {
  # checkov:skip=CKV_GCP_84: images hold no data or secrets; Google-managed encryption is kept rather than a KMS key ring to run
  repository_id = "${var.name}-images"
  location      = var.region
  format        = "DOCKER"
  description   = "FruitOps task, Airflow and MLflow images"

  docker_config {
    immutable_tags = true
  }

  cleanup_policies {
    id     = "keep-recent"
    action = "KEEP"
    most_recent_versions {
      keep_count = 20
    }
  }
}
