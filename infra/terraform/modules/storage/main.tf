# The lake and the MLflow artifact store: uniform access, versioning, lifecycle, never public.
# Access logs go to a log bucket of their own.

locals {
  buckets = {
    lake   = "${var.project_id}-${var.name}-lake"
    mlflow = "${var.project_id}-${var.name}-mlflow"
  }
}

resource "google_storage_bucket" "logs" {
  # checkov:skip=CKV_GCP_62: this is the access-log bucket; logging it into itself would loop
  name                        = "${var.project_id}-${var.name}-access-logs"
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false

  versioning {
    enabled = true
  }

  lifecycle_rule {
    condition {
      age = 365
    }
    action {
      type = "Delete"
    }
  }
}

resource "google_storage_bucket" "this" {
  for_each                    = local.buckets
  name                        = each.value
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false

  versioning {
    enabled = true
  }

  logging {
    log_bucket = google_storage_bucket.logs.name
  }

  # old object versions (overwritten artifacts) go to cheaper storage, then away
  lifecycle_rule {
    condition {
      days_since_noncurrent_time = 30
    }
    action {
      type          = "SetStorageClass"
      storage_class = "NEARLINE"
    }
  }
  lifecycle_rule {
    condition {
      days_since_noncurrent_time = 180
    }
    action {
      type = "Delete"
    }
  }
  lifecycle_rule {
    condition {
      age = 1
    }
    action {
      type = "AbortIncompleteMultipartUpload"
    }
  }
}
