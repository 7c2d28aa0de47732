variable "name" {
  description = "Prefix of the repository id"
  type        = string
}

variable "region" {
  description = "Repository location"
  type        = string
}
