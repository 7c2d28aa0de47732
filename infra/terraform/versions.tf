# Write-only arguments and ephemeral resources (the database passwords) need Terraform 1.11 or
# OpenTofu 1.11. Provider majors: google 8, random 3 (ephemeral random_password since 3.7).
# .terraform.lock.hcl is made by `terraform providers lock` (README.md: it needs the registry).
terraform {
  required_version = ">= 1.11"
  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 8.0"
    }
    random = {
      source  = "hashicorp/random"
      version = "~> 3.7"
    }
  }

  # State in a GCS bucket of its own (versioned, locked), never on a laptop: made once by hand
  # (README.md, "State"), named at init with -backend-config=envs/<env>.backend.hcl
  backend "gcs" {}
}

provider "google" {
  project = var.project_id
  region  = var.region
}
