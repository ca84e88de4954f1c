"""Small building blocks shared by several components: channels-first LayerNorm, MLP, attention."""

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from transformers.activations import ACT2FN


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channel axis of a (batch, channels, height, width) map.

    Ports `sam2.modeling.sam2_utils.LayerNorm2d`. Subclassing `nn.LayerNorm` keeps the parameter
    names (`weight`, `bias`) of transformers' checkpoints.
    """

    def __init__(self, num_channels: int, eps: float = 1e-6):
        super().__init__(num_channels, eps=eps)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        # Spelled out in the original's order of operations: the fused F.layer_norm rounds
        # differently (~1e-6 here, ~2e-5 in the mask logits), and we match the original bit for bit.
        mean = hidden_states.mean(1, keepdim=True)
        centred = hidden_states - mean
        variance = centred.pow(2).mean(1, keepdim=True)
        normalised = centred / torch.sqrt(variance + self.eps)
        return self.weight[:, None, None] * normalised + self.bias[:, None, None]


class MLP(nn.Module):
    """`num_layers` linear layers with an activation between them (original: `sam2_utils.MLP`).

    Parameter names follow transformers: `proj_in`, `layers.{i}`, `proj_out`.
    """

    def __init__(
        self,
        input_dim: int,
        hidden_dim: int,
        output_dim: int,
        num_layers: int,
        activation: str = "relu",
        sigmoid_output: bool = False,
    ):
        super().__init__()
        self.proj_in = nn.Linear(input_dim, hidden_dim)
        self.layers = nn.ModuleList(nn.Linear(hidden_dim, hidden_dim) for _ in range(num_layers - 2))
        self.proj_out = nn.Linear(hidden_dim, output_dim)
        self.activation = ACT2FN[activation]
        self.sigmoid_output = sigmoid_output

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        hidden_states = self.activation(self.proj_in(hidden_states))
        for layer in self.layers:
            hidden_states = self.activation(layer(hidden_states))
        hidden_states = self.proj_out(hidden_states)
        return torch.sigmoid(hidden_states) if self.sigmoid_output else hidden_states


ATTENTION_IMPLEMENTATIONS = ("eager", "sdpa")


def attend(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    implementation: str = "sdpa",
    dropout: float = 0.0,
    math_kernel_on_cpu: bool = False,
) -> torch.Tensor:
    """Scaled dot-product attention on (batch, heads, tokens, head_dim) tensors.

    The one dispatch point of the package: "sdpa" calls torch's fused kernel (what the original
    calls), "eager" spells the softmax out, which is slower but can be read and hooked.

    `math_kernel_on_cpu` reproduces the original's SAM attentions (`sam.transformer.Attention`,
    `RoPEAttention`, `RoPEAttentionv2`): they run SDPA under `sdp_kernel_context`, which turns the
    flash kernel off where no GPU of compute capability >= 8 is present, so on CPU they use the
    math kernel (whose rounding differs from the CPU flash kernel by ~1e-7 per call). On CUDA the
    default dispatch is kept: the original's flash-only context either runs flash (fp16 / bf16,
    which the default picks too) or fails in fp32 and re-enables every kernel for good. The
    perceiver calls SDPA plainly: leave it False there.
    """
    if implementation == "sdpa":
        if math_kernel_on_cpu and query.device.type == "cpu":
            with sdpa_kernel(SDPBackend.MATH):
                return F.scaled_dot_product_attention(query, key, value, dropout_p=dropout)
        return F.scaled_dot_product_attention(query, key, value, dropout_p=dropout)
    if implementation != "eager":
        raise ValueError(f"attn_implementation must be one of {ATTENTION_IMPLEMENTATIONS}, got {implementation!r}")
    weights = torch.matmul(query, key.transpose(-2, -1)) / math.sqrt(query.shape[-1])
    weights = torch.softmax(weights, dim=-1, dtype=torch.float32).to(query.dtype)
    if dropout > 0.0:
        weights = F.dropout(weights, p=dropout)
    return torch.matmul(weights, value)
