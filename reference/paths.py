"""Where things live in the repository, resolved once, absolute."""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
MODELS_DIR = REPO_ROOT / "models"
SETTINGS_FILE = REPO_ROOT / "settings.json"
REPORTS_DIR = REPO_ROOT / "reports"
# Per-server run folders: the working directory of each MLServer child
# (its .metrics and .envs land there) and its log file.
RUNTIME_DIR = REPO_ROOT / ".harness"
# Model code MLServer runs (never imported by the harness): a runtime with a known slowdown.
SLOW_RUNTIME = Path(__file__).with_name("runtimes") / "slow_runtime.py"
