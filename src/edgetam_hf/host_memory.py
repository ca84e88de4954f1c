"""How much memory a new allocation can use now: checked before upsampling a batch of masks to
image size, so that a batch that cannot fit is a ValueError rather than an allocation failure."""

import math
import os

import torch


def check_room_for_upsampled_masks(image_masks, size_hw: tuple[int, int]) -> None:
    """Raise a ValueError, not an allocation failure inside torch, when the float32 masks at image
    size would need more memory than is available now (where that can be known)."""
    if not hasattr(image_masks, "shape") or len(image_masks.shape) < 2:
        return  # _upsample_logits reports malformed masks
    num_masks = math.prod(image_masks.shape[:-2])
    needed = num_masks * size_hw[0] * size_hw[1] * 4
    device = image_masks.device if isinstance(image_masks, torch.Tensor) else torch.device("cpu")
    available = available_memory_bytes(device)
    if available is not None and needed > available:
        per_mask = size_hw[0] * size_hw[1] * 4
        raise ValueError(
            f"post_process_masks: {num_masks} masks of {size_hw[1]}x{size_hw[0]} pixels need {needed / 2**30:.1f} GiB "
            f"as float32 ({per_mask / 2**30:.2f} GiB each), more than the {available / 2**30:.1f} GiB available on "
            f"{device}; upsample fewer masks at a time (pipeline('mask-generation'): lower points_per_batch, each "
            "point gives 3 masks) or use a smaller image"
        )


def available_memory_bytes(device: torch.device) -> int | None:
    """Memory a new allocation on `device` can use now, or None where it cannot be known.

    CUDA: free device memory plus what torch's caching allocator holds unused. CPU on Linux:
    `MemAvailable`, capped by the cgroup (container) limit minus its usage.
    """
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    if device.type != "cpu":
        return None
    available = _meminfo_available_bytes()
    cgroup_room = _cgroup_room_bytes()
    if available is None or cgroup_room is None:
        return available if cgroup_room is None else cgroup_room
    return min(available, cgroup_room)


def _meminfo_available_bytes() -> int | None:
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _cgroup_room_bytes() -> int | None:
    """cgroup v2 `memory.max - memory.current` of this process's group; None when unlimited or unknown."""
    base = "/sys/fs/cgroup"
    try:
        with open(os.path.join(base, "memory.max")) as limit_file:
            limit = limit_file.read().strip()
        with open(os.path.join(base, "memory.current")) as usage_file:
            usage = usage_file.read().strip()
    except OSError:
        return None
    if limit == "max" or not limit.isdigit() or not usage.isdigit():
        return None
    return max(int(limit) - int(usage), 0)
