{
  description = "FruitOps dev shell: Python 3.11, Poetry, PostgreSQL, the S3 server, Terraform and the cloud tools";

  # Only nixpkgs: the Python environment is built by `make setup` (pip for the pinned torch,
  # then Poetry), exactly as CI builds it, so no poetry2nix (unmaintained) is involved.
  # flake.lock pins nixos-26.05 at 78e9c78 (2026-09-30). Nix could not fetch nixpkgs where it
  # was written, so its narHash is the one Nix wrote in public locks of that same commit
  # (they agree); `nix flake metadata` verifies it, `nix flake update` moves to the newest.
  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-26.05";

  outputs = { self, nixpkgs }:
    let
      systems = [ "x86_64-linux" "aarch64-linux" "x86_64-darwin" "aarch64-darwin" ];
      forAllSystems = f: nixpkgs.lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});
    in {
      devShells = forAllSystems (pkgs: {
        default = pkgs.mkShell {
          packages = [
            pkgs.python311
            pkgs.poetry
            pkgs.postgresql_16   # initdb/pg_ctl for `make services-up`
            pkgs.seaweedfs       # the `weed` S3 server (the venv also ships it)
            pkgs.opentofu        # Terraform-compatible; `tofu` reads infra/terraform
            pkgs.checkov
            pkgs.hadolint
            pkgs.google-cloud-sdk
            pkgs.kubectl
            pkgs.kubernetes-helm
            pkgs.gnumake
            pkgs.git
          ];
          # pip's manylinux wheels (torch, numpy, Pillow, OpenVINO) link libstdc++ and libz,
          # which NixOS keeps out of the default search path
          env.LD_LIBRARY_PATH = pkgs.lib.makeLibraryPath [ pkgs.stdenv.cc.cc.lib pkgs.zlib ];
          shellHook = ''
            export FRUITOPS_HOME="$PWD/.fruitops"
            export AIRFLOW_HOME="$FRUITOPS_HOME/airflow"
            export AIRFLOW__CORE__DAGS_FOLDER="$PWD/airflow/dags"
            export AIRFLOW__CORE__LOAD_EXAMPLES=False
            export MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false
            export FRUITOPS_SERVICES_PG_BIN="${pkgs.postgresql_16}/bin"
            echo "FruitOps dev shell: run 'make setup', then 'make demo' or 'make test'."
          '';
        };
      });
    };
}
