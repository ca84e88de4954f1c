"""The image features of the most recently used frames (the original keeps one frame's)."""

from collections import OrderedDict
from collections.abc import Callable
from typing import Any


class FeatureCache:
    """Features by frame index, at most `max_size` of them, the least recently used dropped first."""

    def __init__(self, max_size: int, name: str = "max_vision_features_cache_size"):
        if isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < 1:
            raise ValueError(f"{name} must be a positive int, got {max_size!r}")
        self.max_size = max_size
        self._features: OrderedDict[int, Any] = OrderedDict()

    def __len__(self) -> int:
        return len(self._features)

    def get(self, frame_idx: int, compute: Callable[[], Any]) -> Any:
        """The frame's features, computed by `compute()` and kept if they are not cached."""
        features = self._features.get(frame_idx)
        if features is None:
            self.put(frame_idx, compute())
            return self._features[frame_idx]
        self._features.move_to_end(frame_idx)
        return features

    def put(self, frame_idx: int, features: Any) -> None:
        self._features[frame_idx] = features
        self._features.move_to_end(frame_idx)
        while len(self._features) > self.max_size:
            self._features.popitem(last=False)

    def discard(self, frame_idx: int) -> None:
        self._features.pop(frame_idx, None)

    def clear(self) -> None:
        self._features.clear()
