variable "name" {
  description = "Prefix of the cluster name"
  type        = string
}

variable "project_id" {
  description = "Project (its Workload Identity pool)"
  type        = string
}

variable "region" {
  description = "Regional cluster location"
  type        = string
}

variable "network_id" {
  description = "VPC of the cluster"
  type        = string
}

variable "subnet_id" {
  description = "Subnet of the nodes"
  type        = string
}

variable "pods_range" {
  description = "Secondary range name for pods"
  type        = string
}

variable "services_range" {
  description = "Secondary range name for services"
  type        = string
}

variable "master_cidr" {
  description = "The control plane's /28"
  type        = string
  default     = "172.16.0.0/28"
}

variable "master_authorized_cidrs" {
  description = "CIDRs allowed to reach the control plane"
  type        = list(string)
}

variable "node_sa_email" {
  description = "Service account of the nodes"
  type        = string
}

variable "cpu_machine_type" {
  description = "Machine type of the CPU pool"
  type        = string
  default     = "e2-standard-8"
}

variable "cpu_max_nodes" {
  description = "Most nodes of the CPU pool (per zone)"
  type        = number
  default     = 3
}

variable "gpu_machine_type" {
  description = "Machine type of the GPU pool"
  type        = string
  default     = "n1-standard-8"
}

variable "gpu_type" {
  description = "Accelerator of the GPU pool"
  type        = string
}

variable "gpu_max_nodes" {
  description = "Most nodes of the GPU pool (per zone); it scales from zero"
  type        = number
}
