variable "name" {
  description = "Prefix of the service account ids"
  type        = string
}

variable "project_id" {
  description = "Project of the service accounts and its Workload Identity pool"
  type        = string
}

variable "lake_bucket" {
  description = "Lake bucket the task pods write"
  type        = string
}

variable "mlflow_bucket" {
  description = "Bucket the MLflow server writes artifacts to"
  type        = string
}

variable "registry_id" {
  description = "Artifact Registry repository the nodes pull from"
  type        = string
}

variable "registry_region" {
  description = "Location of that repository"
  type        = string
}

variable "k8s_namespace" {
  description = "Namespace of the Kubernetes service accounts bound by Workload Identity"
  type        = string
}
