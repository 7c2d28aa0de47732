# FruitOps on Google Cloud: the `gcp` profile. Each module holds one concern; this root only
# wires them. `terraform init -backend-config=envs/dev.backend.hcl`, then
# `terraform apply -var-file=envs/dev.tfvars` (README.md).

module "network" {
  source = "./modules/network"
  name   = var.name
  region = var.region
}

module "storage" {
  source     = "./modules/storage"
  name       = var.name
  project_id = var.project_id
  region     = var.region
}

module "registry" {
  source = "./modules/registry"
  name   = var.name
  region = var.region
}

module "iam" {
  source          = "./modules/iam"
  name            = var.name
  project_id      = var.project_id
  lake_bucket     = module.storage.lake_bucket
  mlflow_bucket   = module.storage.mlflow_bucket
  registry_id     = module.registry.repository_id
  registry_region = var.region
  k8s_namespace   = var.k8s_namespace
}

module "database" {
  source                         = "./modules/database"
  name                           = var.name
  project_id                     = var.project_id
  region                         = var.region
  edition                        = var.db_edition
  tier                           = var.db_tier
  transaction_log_retention_days = var.db_log_retention_days
  password_version               = var.db_password_version
  network_id                     = module.network.network_id
  private_vpc_ready              = module.network.private_service_access
  secret_accessors               = [module.iam.airflow_sa_email, module.iam.mlflow_sa_email]
}

module "compute" {
  source                  = "./modules/compute"
  name                    = var.name
  project_id              = var.project_id
  region                  = var.region
  network_id              = module.network.network_id
  subnet_id               = module.network.subnet_id
  pods_range              = module.network.pods_range
  services_range          = module.network.services_range
  master_authorized_cidrs = var.master_authorized_cidrs
  node_sa_email           = module.iam.node_sa_email
  gpu_type                = var.gpu_type
  gpu_max_nodes           = var.gpu_max_nodes
}
