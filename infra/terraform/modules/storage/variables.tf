variable "name" {
  description = "Prefix of the bucket names"
  type        = string
}

variable "project_id" {
  description = "Project id, part of the (global) bucket names"
  type        = string
}

variable "region" {
  description = "Bucket location"
  type        = string
}
