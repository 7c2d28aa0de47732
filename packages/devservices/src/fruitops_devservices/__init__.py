"""The services profile: PostgreSQL, a SeaweedFS S3 server and an MLflow server on loopback.

A development tool, kept out of ``fruitops-core`` so that no task or runtime image carries a
process supervisor (docs/design.md, "Run profiles"). `fruitops services up` starts what is not
running yet (idempotent), each as a process of the project's own with its data and log under
``<FRUITOPS_HOME>/services/``; `fruitops services env` prints the variables that point
FruitOps, MLflow and Airflow at the services. One module per service (`postgres`,
`seaweedfs`, `mlflow_server`), what they share in `supervisor`, the verbs in `stack`.
"""
