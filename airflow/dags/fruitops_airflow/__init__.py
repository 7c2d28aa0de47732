"""Airflow-only code of FruitOps: turning the asset graph into DAGs."""
