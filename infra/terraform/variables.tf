variable "project_id" {
  description = "Google Cloud project that holds everything"
  type        = string
}

variable "region" {
  description = "Region of the network, cluster, database, buckets and registry"
  type        = string
  default     = "europe-west4"
}

variable "name" {
  description = "Prefix of every resource name"
  type        = string
  default     = "fruitops"
}

variable "master_authorized_cidrs" {
  description = "CIDRs allowed to reach the GKE control plane (your office or VPN)"
  type        = list(string)
}

variable "gpu_type" {
  description = "Accelerator of the training node pool"
  type        = string
  default     = "nvidia-tesla-t4"
}

variable "gpu_max_nodes" {
  description = "Most GPU nodes the training pool scales to (it scales to zero when idle)"
  type        = number
  default     = 2
}

variable "db_edition" {
  description = "Cloud SQL edition: ENTERPRISE (custom and shared-core tiers) or ENTERPRISE_PLUS (db-perf-optimized-N-* tiers)"
  type        = string
  default     = "ENTERPRISE"
}

variable "db_tier" {
  description = "Cloud SQL machine tier, one db_edition accepts"
  type        = string
  default     = "db-custom-2-7680"
}

variable "db_log_retention_days" {
  description = "Days of transaction logs for point-in-time recovery (ENTERPRISE: 1-7, ENTERPRISE_PLUS: 1-35)"
  type        = number
  default     = 7
}

variable "db_password_version" {
  description = "Bump to rotate the airflow and mlflow database passwords"
  type        = number
  default     = 1
}

variable "k8s_namespace" {
  description = "Namespace of Airflow, MLflow and the task pods"
  type        = string
  default     = "fruitops"
}
