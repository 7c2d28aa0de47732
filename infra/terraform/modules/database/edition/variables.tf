variable "edition" {
  description = "Cloud SQL edition: ENTERPRISE or ENTERPRISE_PLUS"
  type        = string
}

variable "tier" {
  description = "Machine tier, one the edition accepts"
  type        = string
}

variable "transaction_log_retention_days" {
  description = "Days of transaction logs kept for point-in-time recovery"
  type        = number
}
