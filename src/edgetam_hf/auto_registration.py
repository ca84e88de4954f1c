"""Our classes in transformers' Auto classes and `pipeline(...)`, registered when transformers loads them.

`import edgetam_hf` imports neither torch nor transformers (a CLI's `--help`, the ONNX runtime).
transformers' Auto classes live in four modules of `transformers.models.auto`; right after each is
first imported (at once when it already is), the entries that module holds are added, importing
only the classes they name. No Auto lookup can run before its module is imported, so a bare
`import edgetam_hf` is enough for `AutoModel.from_pretrained(our_folder)`; and those modules
import torch themselves, so registering costs no import the lookup would not make.

Only our own keys are added: the model types `edgetam_hf` / `edgetam_hf_video` and our config
classes, looked up by identity; transformers' `edgetam`, `edgetam_video` and `sam2` keep their
own classes (docs/auto_classes.md). `exist_ok=True` makes each idempotent, and is needed because
the mapping refuses a config whose class *name* is a transformers one even though the class is ours.
"""

import importlib.abc
import logging
import sys
from collections.abc import Callable

logger = logging.getLogger(__name__)
_AUTO = "transformers.models.auto."


def _register_configs() -> None:
    from transformers.models.auto.configuration_auto import AutoConfig

    from .configuration import EdgeTamConfig, EdgeTamVideoConfig

    AutoConfig.register(EdgeTamConfig.model_type, EdgeTamConfig, exist_ok=True)
    AutoConfig.register(EdgeTamVideoConfig.model_type, EdgeTamVideoConfig, exist_ok=True)


def _register_models() -> None:
    from transformers.models.auto.modeling_auto import AutoModel, AutoModelForMaskGeneration

    from .configuration import EdgeTamConfig, EdgeTamVideoConfig
    from .modeling import EdgeTamModel
    from .modeling_video import EdgeTamVideoModel

    AutoModel.register(EdgeTamConfig, EdgeTamModel, exist_ok=True)
    AutoModelForMaskGeneration.register(EdgeTamConfig, EdgeTamModel, exist_ok=True)
    AutoModel.register(EdgeTamVideoConfig, EdgeTamVideoModel, exist_ok=True)
    # A video folder serves mask generation with the image model (which leaves the memory weights
    # aside), as transformers maps its own video config. Straight into the mapping: `register`
    # refuses a model class whose config class has another name.
    AutoModelForMaskGeneration._model_mapping.register(EdgeTamVideoConfig, EdgeTamModel, exist_ok=True)


def _register_image_processors() -> None:
    from transformers.models.auto.image_processing_auto import IMAGE_PROCESSOR_MAPPING

    from .configuration import EdgeTamConfig, EdgeTamVideoConfig
    from .image_processing import EdgeTamImageProcessor

    # Straight into the mapping: AutoImageProcessor.register would first look the config class up
    # by its name, find transformers' EdgeTam entry and import its Sam2 image processor (and so
    # torchvision). Our processor needs neither backend library, so it serves both backends.
    for config_class in (EdgeTamConfig, EdgeTamVideoConfig):
        backends = {"pil": EdgeTamImageProcessor, "torchvision": EdgeTamImageProcessor}
        IMAGE_PROCESSOR_MAPPING.register(config_class, backends, exist_ok=True)


def _register_processors() -> None:
    from transformers.models.auto.processing_auto import AutoProcessor

    from .configuration import EdgeTamConfig, EdgeTamVideoConfig
    from .processing import EdgeTamProcessor
    from .video_processing import EdgeTamVideoProcessor

    AutoProcessor.register(EdgeTamConfig, EdgeTamProcessor, exist_ok=True)
    AutoProcessor.register(EdgeTamVideoConfig, EdgeTamVideoProcessor, exist_ok=True)


# transformers' module -> what is registered once it has loaded
_REGISTRATIONS: dict[str, Callable[[], None]] = {
    _AUTO + "configuration_auto": _register_configs,
    _AUTO + "modeling_auto": _register_models,
    _AUTO + "image_processing_auto": _register_image_processors,
    _AUTO + "processing_auto": _register_processors,
}


def register_with_auto_classes() -> None:
    """Every entry now (imports transformers' Auto modules, torch and our classes); idempotent."""
    for register in _REGISTRATIONS.values():
        register()


def register_when_transformers_loads_them() -> None:
    """Each entry now if its transformers module is loaded, else right after it loads."""
    waiting = {}
    for module_name, register in _REGISTRATIONS.items():
        if module_name in sys.modules:
            _register_safely(register)
        else:
            waiting[module_name] = register
    if waiting and not any(isinstance(finder, _AfterImport) for finder in sys.meta_path):
        sys.meta_path.insert(0, _AfterImport(waiting))


def _register_safely(register: Callable[[], None]) -> None:
    """Runs inside an import of transformers: a failure here must not break transformers itself."""
    try:
        register()
    except Exception as error:  # noqa: BLE001  (say so and leave transformers working)
        if not (isinstance(error, ModuleNotFoundError) and error.name == "torch"):  # no torch: no models to offer
            logger.warning("edgetam_hf could not register with transformers' Auto classes: %s", error)


class _AfterImport(importlib.abc.MetaPathFinder):
    """Finds the watched modules as the other finders would, with a loader that registers after executing."""

    def __init__(self, waiting: dict[str, Callable[[], None]]):
        self.waiting = waiting

    def find_spec(self, name, path, target=None):
        register = self.waiting.pop(name, None)
        if register is None:
            return None
        for finder in sys.meta_path:
            spec = None if finder is self else getattr(finder, "find_spec", lambda *_: None)(name, path, target)
            if spec is not None:
                spec.loader = _ThenRegister(spec.loader, register)
                return spec
        return None


class _ThenRegister(importlib.abc.Loader):
    def __init__(self, loader, register: Callable[[], None]):
        self.loader, self.register = loader, register

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module) -> None:
        self.loader.exec_module(module)
        _register_safely(self.register)

    def __getattr__(self, name):  # get_source, get_resource_reader, ...: the wrapped loader's
        return getattr(self.loader, name)
