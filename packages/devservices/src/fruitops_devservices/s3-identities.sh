#!/bin/sh
# Writes SeaweedFS's S3 identities (weed's -s3.config) to $1, mode 600, from the environment:
# the buckets and their users, written once here. The secrets reach the file through the
# here-document (the shell's own expansion), never a command line.
#   fruitops-tasks   read/write fruitops-lake only (the scheduler and workers: tasks)
#   fruitops-mlflow  read/write fruitops-mlflow only (the MLflow server's artifacts)
#   fruitops-admin   every bucket (for a person: aws s3 ls with it)
set -eu
umask 077
cat > "${1:?the file to write}" <<JSON
{
  "identities": [
    {
      "name": "fruitops-admin",
      "credentials": [{"accessKey": "fruitops-admin", "secretKey": "${S3_ADMIN_SECRET_KEY:?}"}],
      "actions": ["Admin", "Read", "Write", "List", "Tagging"]
    },
    {
      "name": "fruitops-tasks",
      "credentials": [{"accessKey": "fruitops-tasks", "secretKey": "${S3_TASKS_SECRET_KEY:?}"}],
      "actions": ["Read:fruitops-lake", "Write:fruitops-lake", "List:fruitops-lake",
                  "Tagging:fruitops-lake"]
    },
    {
      "name": "fruitops-mlflow",
      "credentials": [{"accessKey": "fruitops-mlflow", "secretKey": "${S3_MLFLOW_SECRET_KEY:?}"}],
      "actions": ["Read:fruitops-mlflow", "Write:fruitops-mlflow", "List:fruitops-mlflow",
                  "Tagging:fruitops-mlflow"]
    }
  ]
}
JSON
