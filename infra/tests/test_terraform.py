"""infra/terraform: parses, the modules are wired, and checkov finds nothing to fail."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import hcl2
import pytest

from infra_checks import INFRA, ROOT, terraform_cli

TF = INFRA / "terraform"
META_ARGUMENTS = {"source", "providers", "depends_on", "count", "for_each", "version"}


def plain(mapping: dict) -> dict:
    """python-hcl2's output without its bookkeeping keys (``__comments__``, ``__is_block__``)."""
    return {k: v for k, v in mapping.items() if not k.startswith("__")}


def parse_dir(folder: Path) -> dict[str, list]:
    """Every top-level block of the folder's .tf files, by kind."""
    blocks: dict[str, list] = {}
    for path in sorted(folder.glob("*.tf")):
        with path.open() as handle:
            for kind, items in plain(hcl2.load(handle)).items():
                blocks.setdefault(kind, []).extend(items)
    return blocks


def names(blocks: dict[str, list], kind: str) -> dict[str, dict]:
    return {name: plain(body) for item in blocks.get(kind, []) for name, body in item.items()}


def outputs_of(call: dict) -> set[str]:
    return {clean(k) for k in names(parse_dir(TF / clean(call["source"])), "output")}


def clean(name: str) -> str:
    return name.strip('"')


@pytest.fixture(scope="module")
def root() -> dict[str, list]:
    return parse_dir(TF)


def module_calls(root) -> dict[str, dict]:
    return {clean(k): v for k, v in names(root, "module").items()}


def test_every_tf_file_parses_and_every_module_is_used(root):
    modules = {p.parent.name for p in TF.glob("modules/*/main.tf")}
    assert modules == {"network", "storage", "database", "compute", "registry", "iam"}
    for folder in TF.glob("modules/*"):
        parsed = parse_dir(folder)
        assert parsed.get("resource"), folder  # each module makes something
    # the one nested module, Cloud SQL's rules, is called by its parent
    assert "./edition" in (TF / "modules/database/main.tf").read_text()
    called = {
        clean(call["source"]).removeprefix("./modules/") for call in module_calls(root).values()
    }
    assert called == modules


def test_every_input_the_root_passes_exists_and_every_required_one_is_passed(root):
    for name, call in module_calls(root).items():
        module = parse_dir(TF / clean(call["source"]))
        variables = {clean(k): v for k, v in names(module, "variable").items()}
        passed = set(call) - META_ARGUMENTS
        assert passed <= set(variables), (name, passed - set(variables))
        required = {v for v, body in variables.items() if "default" not in body}
        assert required <= passed, (name, required - passed)


def test_every_module_output_the_root_reads_exists(root):
    text = "\n".join(p.read_text() for p in TF.glob("*.tf"))
    calls = module_calls(root)
    for module, output in set(re.findall(r"module\.([a-z_]+)\.([a-z_]+)", text)):
        assert module in calls, module
        outputs = {
            clean(k) for k in names(parse_dir(TF / clean(calls[module]["source"])), "output")
        }
        assert output in outputs, f"module.{module}.{output}"


def test_variables_and_outputs_are_described_and_the_example_tfvars_fits(root):
    for folder in [TF, *TF.glob("modules/*")]:
        parsed = parse_dir(folder)
        for kind in ("variable", "output"):
            for name, body in names(parsed, kind).items():
                assert body.get("description"), (folder.name, kind, name)
    example = plain(hcl2.loads((TF / "envs" / "dev.tfvars.example").read_text()))
    variables = {clean(k): v for k, v in names(root, "variable").items()}
    assert set(example) <= set(variables)
    assert {v for v, body in variables.items() if "default" not in body} <= set(example)


def test_the_security_settings_the_issue_asks_for_are_there():
    storage = (TF / "modules/storage/main.tf").read_text()
    for setting in (
        "uniform_bucket_level_access = true",
        'public_access_prevention    = "enforced"',
        "versioning {",
        "lifecycle_rule {",
    ):
        assert setting in storage, setting
    database = (TF / "modules/database/main.tf").read_text()
    for setting in (
        "ipv4_enabled    = false",
        "deletion_protection = true",
        "point_in_time_recovery_enabled = true",
        'resource "google_secret_manager_secret"',
    ):
        assert setting in database, setting
    compute = (TF / "modules/compute/main.tf").read_text()
    assert "min_node_count = 0" in compute and 'key    = "nvidia.com/gpu"' in compute
    assert "workload_pool" in compute and "enable_private_nodes    = true" in compute
    everything = "".join(p.read_text() for p in TF.rglob("*.tf"))
    assert "google_service_account_key" not in everything
    # the lake reads gs:// natively with Workload Identity: no HMAC key, no secret for it
    assert "google_storage_hmac_key" not in everything and "lake_hmac" not in everything


def test_checkov_passes_with_every_skip_justified(run):
    result = run("checkov", "-d", str(TF), "--quiet", "--compact", "--skip-download",
                 "--framework", "terraform")  # fmt: skip
    assert result.returncode == 0, result.stdout[-5000:]
    assert "Failed checks: 0" in result.stdout
    for path in TF.rglob("*.tf"):
        for skip in re.findall(r"checkov:skip=(.*)", path.read_text()):
            check, _, reason = skip.partition(":")
            assert re.fullmatch(r"CKV2?_GCP_\d+", check.strip()), skip
            assert len(reason.strip()) > 30, f"{path.name}: {check} needs a real reason"


def terraform(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = os.environ | {"CHECKPOINT_DISABLE": "1", "TF_IN_AUTOMATION": "1", "NO_COLOR": "1"}
    return subprocess.run([terraform_cli(), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)  # fmt: skip


@pytest.fixture(scope="module")
def edition_root(tmp_path_factory) -> Path:
    """A root that calls only modules/database/edition: no provider, so Terraform runs here."""
    folder = tmp_path_factory.mktemp("edition-root")
    (folder / "main.tf").write_text(f"""
module "edition" {{
  source                         = "{TF / "modules/database/edition"}"
  edition                        = var.edition
  tier                           = var.tier
  transaction_log_retention_days = var.days
}}
variable "edition" {{ type = string }}
variable "tier" {{ type = string }}
variable "days" {{ type = number }}
output "settings" {{ value = module.edition.settings }}
""")
    done = terraform("init", "-backend=false", "-input=false", "-no-color", cwd=folder)
    assert done.returncode == 0, done.stdout + done.stderr
    return folder


def plan_edition(folder: Path, edition: str, tier: str, days: int) -> subprocess.CompletedProcess:
    variables = {"edition": edition, "tier": tier, "days": days}
    flags = [f"-var={name}={value}" for name, value in variables.items()]
    return terraform("plan", "-input=false", "-no-color", *flags, cwd=folder)


def root_default(name: str):
    variables = {clean(k): v for k, v in names(parse_dir(TF), "variable").items()}
    default = variables[name]["default"]
    return clean(default) if isinstance(default, str) else default


@pytest.mark.parametrize(
    ("edition", "tier", "days"),
    [("ENTERPRISE", "db-custom-2-7680", 7), ("ENTERPRISE", "db-g1-small", 1),
     ("ENTERPRISE_PLUS", "db-perf-optimized-N-8", 35)],
)  # fmt: skip
def test_cloud_sql_takes_the_tiers_each_edition_has(edition_root, edition, tier, days):
    done = plan_edition(edition_root, edition, tier, days)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize(
    ("edition", "tier", "days", "says"),
    [("ENTERPRISE_PLUS", "db-custom-2-7680", 7, "is not a tier of the ENTERPRISE_PLUS edition"),
     ("ENTERPRISE", "db-perf-optimized-N-8", 7, "is not a tier of the ENTERPRISE edition"),
     ("ENTERPRISE", "db-custom-2-7680", 14, "the ENTERPRISE edition keeps transaction logs 1 to 7"),
     ("STANDARD", "db-custom-2-7680", 7, "editions are ENTERPRISE and ENTERPRISE_PLUS")],
)  # fmt: skip
def test_pairs_cloud_sql_refuses_fail_at_plan_time_naming_the_setting(
    edition_root, edition, tier, days, says
):
    done = plan_edition(edition_root, edition, tier, days)
    assert done.returncode != 0
    message = " ".join((done.stdout + done.stderr).replace("│", " ").split())
    assert says in message and "precondition failed" in message, message


def test_the_root_defaults_are_a_pair_cloud_sql_takes(edition_root):
    done = plan_edition(edition_root, root_default("db_edition"), root_default("db_tier"),
                        root_default("db_log_retention_days"))  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    instance = (TF / "modules/database/main.tf").read_text()
    # the instance takes all three from the checked output, never straight from a variable
    for setting in ("edition", "tier", "transaction_log_retention_days"):
        taken = rf"{setting}\s+= module\.edition\.settings\.{setting}\n"
        assert re.search(taken, instance), setting


def test_no_secret_is_kept_in_state():
    everything = "".join(p.read_text() for p in TF.rglob("*.tf"))
    # write-only arguments fed by ephemeral values: Terraform never stores them
    assert not re.search(r"\bsecret_data\s*=", everything)
    assert not re.search(r"^\s*password\s*=", everything, re.M)
    assert 'resource "random_password"' not in everything
    assert 'ephemeral "random_password" "users"' in everything
    for argument in ("secret_data_wo", "secret_data_wo_version", "password_wo",
                     "password_wo_version"):  # fmt: skip
        assert re.search(rf"\b{argument}\s*=", everything), argument


def test_providers_are_pinned_to_current_majors_and_state_is_remote():
    (settings,) = parse_dir(TF)["terraform"]
    required = settings["required_providers"][0]
    majors = {name: int(re.search(r"~>\s*(\d+)\.", spec["version"])[1])
              for name, spec in required.items() if not name.startswith("__")}  # fmt: skip
    assert majors == {"google": 8, "random": 3}, majors
    # write-only arguments and ephemeral resources need 1.11; ephemeral random_password 3.7
    assert clean(settings["required_version"]) == ">= 1.11"
    assert re.search(r"~>\s*3\.(7|8|9|\d\d)", required["random"]["version"])
    assert "gcs" in {clean(name) for block in settings["backend"] for name in block}
    example = (TF / "envs/dev.backend.hcl.example").read_text()
    assert {"bucket", "prefix"} <= set(plain(hcl2.loads(example)))
    # the lock file, once made, is committed
    ignored = subprocess.run(["git", "check-ignore", "-q", "infra/terraform/.terraform.lock.hcl"],
                             cwd=ROOT)  # fmt: skip
    assert ignored.returncode == 1
    readme = (TF / "README.md").read_text()
    assert "terraform providers lock -platform=linux_amd64 -platform=darwin_arm64" in readme


def test_terraform_files_are_formatted():
    done = terraform("fmt", "-check", "-recursive", "-diff", str(TF), cwd=TF)
    assert done.returncode == 0, done.stdout
