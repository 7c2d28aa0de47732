output "network_id" {
  description = "VPC id"
  value       = google_compute_network.this.id
}

output "subnet_id" {
  description = "Subnet id"
  value       = google_compute_subnetwork.this.id
}

output "pods_range" {
  description = "Name of the pods secondary range"
  value       = "${var.name}-pods"
}

output "services_range" {
  description = "Name of the services secondary range"
  value       = "${var.name}-services"
}

output "private_service_access" {
  description = "The peering Cloud SQL's private IP needs (depend on it)"
  value       = google_service_networking_connection.private_services.id
}
