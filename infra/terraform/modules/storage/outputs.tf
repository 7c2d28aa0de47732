output "lake_bucket" {
  description = "Bucket of the lake (FRUITOPS_LAKE_URI=gs://<this>)"
  value       = google_storage_bucket.this["lake"].name
}

output "mlflow_bucket" {
  description = "Bucket of the MLflow artifacts"
  value       = google_storage_bucket.this["mlflow"].name
}
