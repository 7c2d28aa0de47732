# What the compose/Helm settings need (see infra/deploy/README.md).

output "lake_uri" {
  description = "FRUITOPS_LAKE_URI"
  value       = "gs://${module.storage.lake_bucket}"
}

output "mlflow_artifacts_destination" {
  description = "mlflow server --artifacts-destination"
  value       = "gs://${module.storage.mlflow_bucket}/artifacts"
}

output "db_private_ip" {
  description = "Cloud SQL private IP (Airflow and MLflow connect to it from the cluster)"
  value       = module.database.private_ip
}

output "db_password_secrets" {
  description = "Secret Manager secrets holding the airflow and mlflow database passwords"
  value       = module.database.password_secrets
}

output "cluster_name" {
  description = "GKE cluster: gcloud container clusters get-credentials <name> --region <region>"
  value       = module.compute.cluster_name
}

output "registry_url" {
  description = "Docker repository for the FruitOps images (FRUITOPS_TASK_IMAGE prefix)"
  value       = module.registry.repository_url
}

output "workload_identity_annotations" {
  description = "iam.gke.io/gcp-service-account annotation of each Kubernetes service account"
  value = merge(
    { for ksa in module.iam.airflow_ksas : ksa => module.iam.airflow_sa_email },
    {
      "mlflow"                = module.iam.mlflow_sa_email,
      "fruitops-tasks"        = module.iam.tasks_sa_email,
      "fruitops-model-server" = module.iam.serving_sa_email,
    },
  )
}
