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

variable "tier" {
  description = "Machine tier"
  type        = string
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
