{
  description = "FruitOps dev shell: Python 3.11, Poetry, PostgreSQL and tools";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-24.11";
  inputs.flake-utils.url = "github:numtide/flake-utils";

  outputs = { self, nixpkgs, flake-utils }:
    flake-utils.lib.eachDefaultSystem (system:
      let pkgs = import nixpkgs { inherit system; };
      in {
        devShells.default = pkgs.mkShell {
          packages = [
            pkgs.python311
            pkgs.poetry
            pkgs.postgresql_16
            pkgs.gnumake
            pkgs.git
            pkgs.ruff
          ];
          # The Python environment itself is built by `make setup` (pip for torch, then
          # Poetry) so the dev shell and CI install exactly the same pinned packages.
          shellHook = ''
            export FRUITOPS_HOME="$PWD/.fruitops"
            export AIRFLOW_HOME="$FRUITOPS_HOME/airflow"
            export AIRFLOW__CORE__DAGS_FOLDER="$PWD/airflow/dags"
            export AIRFLOW__CORE__LOAD_EXAMPLES=False
            export MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false
            echo "FruitOps dev shell: run 'make setup', then 'make demo' or 'make test'."
          '';
        };
      });
}
