# Cloud SQL PostgreSQL on a private IP only, with backups, point-in-time recovery, deletion
# protection and TLS; databases and users for Airflow and MLflow, passwords in Secret Manager.
# The passwords are ephemeral and go only into write-only arguments: none is in the state.

# Cloud SQL's edition/tier/retention rules, refused at plan time (see edition/main.tf)
module "edition" {
  source                         = "./edition"
  edition                        = var.edition
  tier                           = var.tier
  transaction_log_retention_days = var.transaction_log_retention_days
}

resource "google_sql_database_instance" "this" {
  # checkov:skip=CKV_GCP_6: TLS is enforced by ssl_mode = "ENCRYPTED_ONLY"; require_ssl, which this check reads, is gone from provider 6
  name                = "${var.name}-postgres"
  region              = var.region
  database_version    = "POSTGRES_18"
  deletion_protection = true
  depends_on          = [var.private_vpc_ready]

  settings {
    edition           = module.edition.settings.edition
    tier              = module.edition.settings.tier
    availability_type = "REGIONAL"
    disk_autoresize   = true

    ip_configuration {
      ipv4_enabled    = false
      private_network = var.network_id
      ssl_mode        = "ENCRYPTED_ONLY"
    }

    backup_configuration {
      enabled                        = true
      point_in_time_recovery_enabled = true
      transaction_log_retention_days = module.edition.settings.transaction_log_retention_days
      start_time                     = "02:00"
      backup_retention_settings {
        retained_backups = 14
      }
    }

    maintenance_window {
      day  = 7
      hour = 3
    }

    insights_config {
      query_insights_enabled = true
    }

    # the logging flags CIS asks of PostgreSQL (pgAudit: DDL and role changes)
    database_flags {
      name  = "log_checkpoints"
      value = "on"
    }
    database_flags {
      name  = "log_connections"
      value = "on"
    }
    database_flags {
      name  = "log_disconnections"
      value = "on"
    }
    database_flags {
      name  = "log_lock_waits"
      value = "on"
    }
    database_flags {
      name  = "log_hostname"
      value = "on"
    }
    database_flags {
      name  = "log_duration"
      value = "on"
    }
    database_flags {
      name  = "log_min_messages"
      value = "error"
    }
    database_flags {
      name  = "log_min_error_statement"
      value = "error"
    }
    database_flags {
      name  = "log_temp_files"
      value = "0"
    }
    database_flags {
      name  = "log_min_duration_statement"
      value = "-1"
    }
    database_flags {
      name  = "log_statement"
      value = "ddl"
    }
    database_flags {
      name  = "cloudsql.enable_pgaudit"
      value = "on"
    }
    database_flags {
      name  = "pgaudit.log"
      value = "ddl,role"
    }
  }
}

locals {
  users = toset(["airflow", "mlflow"])
}

# made anew on each run, but sent only when a secret version is created (first apply, or a
# bump of var.password_version)
ephemeral "random_password" "users" {
  for_each = local.users
  length   = 32
  special  = false
}

resource "google_sql_database" "this" {
  for_each = local.users
  name     = each.key
  instance = google_sql_database_instance.this.name
}

resource "google_secret_manager_secret" "passwords" {
  for_each  = local.users
  secret_id = "${var.name}-${each.key}-db-password"
  replication {
    auto {}
  }
}

resource "google_secret_manager_secret_version" "passwords" {
  for_each               = local.users
  secret                 = google_secret_manager_secret.passwords[each.key].id
  secret_data_wo         = ephemeral.random_password.users[each.key].result
  secret_data_wo_version = tostring(var.password_version)
}

# the user's password is read back from the secret, so the two never disagree
ephemeral "google_secret_manager_secret_version" "passwords" {
  for_each = local.users
  secret   = google_secret_manager_secret.passwords[each.key].id
  version  = google_secret_manager_secret_version.passwords[each.key].version
}

resource "google_sql_user" "this" {
  for_each            = local.users
  name                = each.key
  instance            = google_sql_database_instance.this.name
  password_wo         = ephemeral.google_secret_manager_secret_version.passwords[each.key].secret_data
  password_wo_version = var.password_version
}

resource "google_secret_manager_secret_iam_member" "accessors" {
  for_each = {
    for pair in setproduct(local.users, var.secret_accessors) :
    "${pair[0]}/${pair[1]}" => { secret = pair[0], member = pair[1] }
  }
  secret_id = google_secret_manager_secret.passwords[each.value.secret].id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${each.value.member}"
}
