"""transformers' own common test mixins, from the source distribution of the installed version.

The wheel has no tests; the sdist on PyPI holds `tests/test_*_common.py` (ModelTesterMixin,
ConfigTester, ProcessorTesterMixin, ...) but neither the per-model test files nor the docs. We
download it once with pip (the ordinary client; CI reaches PyPI too), keep its `tests/` folder in
a cache and import it unmodified as the package `transformers_tests`. Two modules it imports are
not in the sdist (`tests/exporters`, `tests/generation`, `tests/utils`,
`utils/fetch_hub_objects_for_ci.py`); they get empty stand-ins: their mixins serve exporters and
generation, which EdgeTAM has neither of.
"""

import importlib
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import transformers

PACKAGE = "transformers_tests"
_STUBS = {
    "exporters/__init__.py": "",
    "exporters/test_export.py": "class ExportTesterMixin:\n    pass\n",
    "generation/__init__.py": "",
    "generation/test_utils.py": "class GenerationTesterMixin:\n    pass\n",
    # ConfigTester reads these only for configs without sub-configs; EdgeTAM's has three.
    "utils/__init__.py": "",
    "utils/test_configuration_utils.py": "config_common_kwargs = {}\n",
}
# test_processing_common.py imports this from transformers' `utils/` folder (to map Hub URLs to CI
# copies); the URLs it would map are never fetched here.
_FETCH_HUB_STUB = "def url_to_local_path(url, *args, **kwargs):\n    return url\n"


def _cache_dir() -> Path:
    root = os.environ.get("EDGETAM_TRANSFORMERS_TESTS_CACHE") or Path.home() / ".cache" / "edgetam-hf"
    return Path(root) / f"transformers-{transformers.__version__}-tests"


def _download_tests(destination: Path) -> None:
    version = transformers.__version__
    with tempfile.TemporaryDirectory() as download_dir:
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:"]
        command += ["-d", download_dir, f"transformers=={version}"]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(
                f"could not download transformers=={version}'s source distribution from PyPI for its common "
                f"tests (set EDGETAM_TRANSFORMERS_TESTS_CACHE to a folder that holds it):\n{result.stderr}"
            )
        (archive,) = Path(download_dir).glob("transformers-*.tar.gz")
        staging = destination.with_name(destination.name + ".partial")
        prefix = f"transformers-{version}/tests/"
        with tarfile.open(archive) as sdist:
            members = [m for m in sdist.getmembers() if m.name.startswith(prefix) and m.isfile()]
            for member in members:
                member.name = member.name[len(prefix):]
            sdist.extractall(staging / PACKAGE, members=members, filter="data")
    package = staging / PACKAGE
    (package / "__init__.py").touch()
    for relative, text in _STUBS.items():
        (package / relative).parent.mkdir(parents=True, exist_ok=True)
        (package / relative).write_text(text)
    (staging / "fetch_hub_objects_for_ci.py").write_text(_FETCH_HUB_STUB)
    staging.rename(destination)  # whole or not at all: an interrupted download is not reused


def load(module: str):
    """`transformers_tests.<module>`, e.g. `load("test_modeling_common")`."""
    root = _cache_dir()
    if not (root / PACKAGE).is_dir():
        root.parent.mkdir(parents=True, exist_ok=True)
        _download_tests(root)
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    return importlib.import_module(f"{PACKAGE}.{module}")
