"""Position encodings: sine (FPN neck, memory), random Fourier (prompts), 2D axial RoPE (memory attention)."""

import math

import torch
from torch import nn


class SinePositionEncoding(nn.Module):
    """Normalised 2D sine / cosine encoding of a feature map's grid (original: `PositionEmbeddingSine`).

    Half of the `num_channels` channels encode y, half encode x; it depends only on the grid size,
    so it has no parameters and a result is cached per (height, width, device, dtype).
    """

    def __init__(self, num_channels: int, temperature: float = 10000.0):
        super().__init__()
        if num_channels % 4 != 0:
            raise ValueError(f"num_channels must be a multiple of 4, got {num_channels}")
        self.num_channels_per_axis = num_channels // 2
        self.temperature = temperature
        self._cache: dict[tuple, torch.Tensor] = {}

    @torch.no_grad()
    def forward(self, height: int, width: int, device=None, dtype=torch.float32) -> torch.Tensor:
        """Returns the (num_channels, height, width) encoding."""
        cache_key = (height, width, torch.device(device) if device is not None else None, dtype)
        if cache_key not in self._cache:
            self._cache[cache_key] = self._encode(height, width, device).to(dtype)
        return self._cache[cache_key]

    def _encode(self, height: int, width: int, device) -> torch.Tensor:
        eps = 1e-6
        y_positions = torch.arange(1, height + 1, dtype=torch.float32, device=device)
        x_positions = torch.arange(1, width + 1, dtype=torch.float32, device=device)
        # Normalise to (0, 2 pi] as the original does: divide by the last position (+ eps), then scale.
        y_positions = y_positions / (y_positions[-1:] + eps) * (2 * math.pi)
        x_positions = x_positions / (x_positions[-1:] + eps) * (2 * math.pi)
        frequencies = torch.arange(self.num_channels_per_axis, dtype=torch.float32, device=device)
        frequencies = self.temperature ** (2 * (frequencies // 2) / self.num_channels_per_axis)
        y_encoding = self._interleave_sin_cos(y_positions[:, None] / frequencies)  # (height, C/2)
        x_encoding = self._interleave_sin_cos(x_positions[:, None] / frequencies)  # (width, C/2)
        y_encoding = y_encoding[:, None, :].expand(height, width, -1)
        x_encoding = x_encoding[None, :, :].expand(height, width, -1)
        return torch.cat((y_encoding, x_encoding), dim=-1).permute(2, 0, 1).contiguous()

    @staticmethod
    def _interleave_sin_cos(angles: torch.Tensor) -> torch.Tensor:
        return torch.stack((angles[:, 0::2].sin(), angles[:, 1::2].cos()), dim=2).flatten(1)


class RandomFourierPositionEncoding(nn.Module):
    """Encoding of normalised (x, y) coordinates by random spatial frequencies (original:
    `PositionEmbeddingRandom`). The frequency matrix is a buffer stored in checkpoints as
    `positional_embedding` (transformers' name)."""

    def __init__(self, num_channels: int, scale: float = 1.0):
        super().__init__()
        self.scale = scale
        self.register_buffer("positional_embedding", scale * torch.randn(2, num_channels // 2))

    def forward(self, coordinates: torch.Tensor) -> torch.Tensor:
        """(..., 2) coordinates in [0, 1] -> (..., num_channels) encoding."""
        coordinates = 2 * coordinates - 1
        coordinates = coordinates.to(self.positional_embedding.dtype) @ self.positional_embedding
        coordinates = 2 * math.pi * coordinates
        return torch.cat([torch.sin(coordinates), torch.cos(coordinates)], dim=-1)

    def grid(self, height: int, width: int) -> torch.Tensor:
        """The encoding of every cell centre of a (height, width) grid: (num_channels, height, width)."""
        device = self.positional_embedding.device
        y_centres = (torch.arange(height, dtype=torch.float32, device=device) + 0.5) / height
        x_centres = (torch.arange(width, dtype=torch.float32, device=device) + 0.5) / width
        coordinates = torch.stack(torch.meshgrid(x_centres, y_centres, indexing="xy"), dim=-1)
        return self(coordinates).permute(2, 0, 1)


class AxialRotaryEncoding(nn.Module):
    """2D axial rotary position encoding of a (height, width) token grid (original:
    `compute_axial_cis` in `sam2.modeling.position_encoding`, used by `RoPEAttention(v2)`).

    A head's channels are read as `head_dim // 2` (real, imaginary) pairs; the first half of the
    pairs turn with the token's column, the second half with its row, each at the frequencies
    `theta ** (-4 k / head_dim)`. The tables are built once per grid in float32 with
    `torch.polar`, as the original builds them: `cos` / `sin` of the same angles differ from it
    in the last bit.
    """

    def __init__(self, head_dim: int, theta: float = 10000.0):
        super().__init__()
        if head_dim % 4 != 0:
            raise ValueError(f"head_dim must be a multiple of 4 for a 2D rotary encoding, got {head_dim}")
        self.head_dim = head_dim
        self.theta = theta
        self._cache: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}

    @torch.no_grad()
    def forward(self, height: int, width: int, device=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns the (cos, sin) tables, each (height * width, head_dim // 2), tokens in row-major order."""
        cache_key = (height, width, torch.device(device) if device is not None else None)
        if cache_key not in self._cache:
            self._cache[cache_key] = self._tables(height, width, device)
        return self._cache[cache_key]

    def _tables(self, height: int, width: int, device) -> tuple[torch.Tensor, torch.Tensor]:
        exponents = torch.arange(0, self.head_dim, 4, device=device).float() / self.head_dim
        frequencies = 1.0 / (self.theta**exponents)  # (head_dim // 4,)
        columns = torch.arange(width, device=device).repeat(height).float()
        rows = torch.arange(height, device=device).repeat_interleave(width).float()
        angles = torch.cat((torch.outer(columns, frequencies), torch.outer(rows, frequencies)), dim=-1)
        rotations = torch.view_as_real(torch.polar(torch.ones_like(angles), angles))
        return rotations[..., 0].contiguous(), rotations[..., 1].contiguous()


def apply_axial_rotary(tokens: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotates (..., num_tokens, head_dim) by (num_tokens, head_dim // 2) tables.

    The rotation is done in float32 whatever the input dtype, as in the original, and written as
    the complex product's real arithmetic (ac - bd, ad + bc) so that it needs no complex dtype.
    """
    real, imaginary = tokens.float().unflatten(-1, (-1, 2)).unbind(-1)
    rotated = torch.stack((real * cos - imaginary * sin, real * sin + imaginary * cos), dim=-1)
    return rotated.flatten(-2).to(tokens.dtype)
