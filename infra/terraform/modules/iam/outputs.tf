output "node_sa_email" {
  description = "Service account of the GKE nodes"
  value       = google_service_account.this["nodes"].email
}

output "tasks_sa_email" {
  description = "Service account of the task pods (KSA fruitops-tasks)"
  value       = google_service_account.this["tasks"].email
}

output "mlflow_sa_email" {
  description = "Service account of the MLflow server (KSA mlflow)"
  value       = google_service_account.this["mlflow"].email
}

output "airflow_sa_email" {
  description = "Service account of the Airflow components (KSAs airflow-<component>)"
  value       = google_service_account.this["airflow"].email
}

output "airflow_ksas" {
  description = "Kubernetes service accounts of the Airflow components bound to the airflow account"
  value       = local.airflow_components
}

output "serving_sa_email" {
  description = "Service account of the online model server (KSA fruitops-model-server)"
  value       = google_service_account.this["serving"].email
}
