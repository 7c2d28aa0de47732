# FruitOps project settings for Airflow and MLflow, in one place. Source it:
#   . scripts/env.sh          (the Makefile and scripts/airflow do)
# Anything already set in the environment wins.
_fruitops_root="$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")/.." && pwd)"
export FRUITOPS_HOME="${FRUITOPS_HOME:-$_fruitops_root/.fruitops}"
export AIRFLOW_HOME="${AIRFLOW_HOME:-$FRUITOPS_HOME/airflow}"
export AIRFLOW__CORE__DAGS_FOLDER="${AIRFLOW__CORE__DAGS_FOLDER:-$_fruitops_root/airflow/dags}"
export AIRFLOW__CORE__LOAD_EXAMPLES="${AIRFLOW__CORE__LOAD_EXAMPLES:-False}"
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="${AIRFLOW__DATABASE__SQL_ALCHEMY_CONN:-sqlite:///$AIRFLOW_HOME/airflow.db}"
# the UI and API on this machine only (Airflow's default is every interface)
export AIRFLOW__API__HOST="${AIRFLOW__API__HOST:-127.0.0.1}"
# LocalExecutor's worker processes: each task loads torch, 32 (the default) would not fit
export AIRFLOW__CORE__PARALLELISM="${AIRFLOW__CORE__PARALLELISM:-4}"
export MLFLOW_SERVER_ENABLE_JOB_EXECUTION="${MLFLOW_SERVER_ENABLE_JOB_EXECUTION:-false}"
export PATH="$_fruitops_root/.venv/bin:$PATH"
unset _fruitops_root
