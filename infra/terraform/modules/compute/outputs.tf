output "cluster_name" {
  description = "GKE cluster name"
  value       = google_container_cluster.this.name
}

output "cluster_endpoint" {
  description = "Control plane endpoint"
  value       = google_container_cluster.this.endpoint
  sensitive   = true
}
