output "private_ip" {
  description = "Private IP of the instance"
  value       = google_sql_database_instance.this.private_ip_address
}

output "connection_name" {
  description = "project:region:instance, for the Cloud SQL Auth Proxy"
  value       = google_sql_database_instance.this.connection_name
}

output "password_secrets" {
  description = "Secret ids of the airflow and mlflow passwords"
  value       = { for k, s in google_secret_manager_secret.passwords : k => s.secret_id }
}
