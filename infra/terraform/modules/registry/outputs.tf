output "repository_id" {
  description = "Repository id"
  value       = google_artifact_registry_repository.this.repository_id
}

output "repository_url" {
  description = "Image prefix: <region>-docker.pkg.dev/<project>/<repository>"
  value       = "${var.region}-docker.pkg.dev/${google_artifact_registry_repository.this.project}/${google_artifact_registry_repository.this.repository_id}"
}
