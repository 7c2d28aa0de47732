variable "name" {
  description = "Prefix of the instance and secret names"
  type        = string
}

variable "project_id" {
  description = "Project of the instance"
  type        = string
}

variable "region" {
  description = "Region of the instance"
  type        = string
}

variable "edition" {
  description = "Cloud SQL edition: ENTERPRISE (custom tiers) or ENTERPRISE_PLUS"
  type        = string
}

variable "tier" {
  description = "Machine tier, one the edition accepts"
  type        = string
}

variable "transaction_log_retention_days" {
  description = "Days of transaction logs for point-in-time recovery (ENTERPRISE: at most 7)"
  type        = number
}

variable "password_version" {
  description = "Bump to rotate the airflow and mlflow passwords (write-only: never in state)"
  type        = number
}

variable "network_id" {
  description = "VPC the private IP lives in"
  type        = string
}

variable "private_vpc_ready" {
  description = "Id of the private service access connection (the instance waits for it)"
  type        = string
}

variable "secret_accessors" {
  description = "Service account emails that may read the database passwords"
  type        = list(string)
}
