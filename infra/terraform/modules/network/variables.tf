variable "name" {
  description = "Prefix of the resource names"
  type        = string
}

variable "region" {
  description = "Region of the subnet and router"
  type        = string
}

variable "subnet_cidr" {
  description = "Primary range of the subnet (nodes)"
  type        = string
  default     = "10.10.0.0/20"
}

variable "pods_cidr" {
  description = "Secondary range for GKE pods"
  type        = string
  default     = "10.20.0.0/14"
}

variable "services_cidr" {
  description = "Secondary range for GKE services"
  type        = string
  default     = "10.30.0.0/20"
}
