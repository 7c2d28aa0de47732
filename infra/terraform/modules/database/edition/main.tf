# What Cloud SQL accepts, checked at plan time: it needs no provider, so infra/tests can run
# it with Terraform offline. PostgreSQL 16+ defaults to ENTERPRISE_PLUS, which refuses custom
# and shared-core tiers ("Invalid Tier … for (ENTERPRISE_PLUS) Edition" only at apply), so the
# database module always names its edition and passes it through here first.

locals {
  # ENTERPRISE_PLUS: the predefined performance-optimised tiers only; ENTERPRISE: custom and
  # shared-core tiers
  tier_patterns = {
    ENTERPRISE      = "^db-(custom-[0-9]+-[0-9]+|f1-micro|g1-small)$"
    ENTERPRISE_PLUS = "^db-perf-optimized-[A-Z0-9]+-[0-9]+$"
  }
  # point-in-time recovery keeps transaction logs at most this many days
  max_log_retention_days = {
    ENTERPRISE      = 7
    ENTERPRISE_PLUS = 35
  }
}

output "settings" {
  description = "The edition, tier and log retention, once Cloud SQL would accept them"
  value = {
    edition                        = var.edition
    tier                           = var.tier
    transaction_log_retention_days = var.transaction_log_retention_days
  }

  precondition {
    condition     = contains(keys(local.tier_patterns), var.edition)
    error_message = "db_edition = \"${var.edition}\": Cloud SQL editions are ENTERPRISE and ENTERPRISE_PLUS."
  }
  precondition {
    # (an unknown edition is the first precondition's error alone)
    condition     = !contains(keys(local.tier_patterns), var.edition) || can(regex(lookup(local.tier_patterns, var.edition, ""), var.tier))
    error_message = "db_tier = \"${var.tier}\" is not a tier of the ${var.edition} edition: ENTERPRISE takes db-custom-<vCPUs>-<MiB>, db-f1-micro or db-g1-small; ENTERPRISE_PLUS takes db-perf-optimized-N-<vCPUs>. Change db_tier or db_edition."
  }
  precondition {
    condition = !contains(keys(local.tier_patterns), var.edition) || (
      var.transaction_log_retention_days >= 1 &&
    var.transaction_log_retention_days <= lookup(local.max_log_retention_days, var.edition, 0))
    error_message = "db_log_retention_days = ${var.transaction_log_retention_days}: the ${var.edition} edition keeps transaction logs 1 to ${lookup(local.max_log_retention_days, var.edition, 0)} days."
  }
}
