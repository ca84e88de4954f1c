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


def channels_last_in_inference(module: nn.Module, maps: torch.Tensor) -> torch.Tensor:
    """`maps` (batch, channels, height, width) in channels-last memory layout when `module` runs in
    inference (eval mode, gradients off) in reduced precision, else as they are.

    oneDNN's bfloat16 convolutions are fastest on channels-last maps (a 1x1 conv on channels-first
    bfloat16 maps takes ~5x longer), and every conv, norm and elementwise op after them keeps the
    layout. float32 keeps channels-first: its channels-last kernels round differently, and on the
    fixture that takes the video object scores past the 1e-4 parity with the original (1.4e-4).
    Not while torch.export traces (ONNX export): a layout is no part of an exported graph, and
    tracing half-precision convolutions on channels-last maps specialises the batch axis.
    """
    if maps.dtype == torch.float32 or module.training or torch.is_grad_enabled() or torch.compiler.is_exporting():
        return maps
    return maps.contiguous(memory_format=torch.channels_last)


class ChangeAwareModule(nn.Module):
    """A module told when what it computes may change: `weights_changed()` runs on a mode switch
    (`train()` / `eval()`), on `load_state_dict` and on moves and casts (`to()`, `float()`, ...).
    Modules that keep something derived from their weights override it to drop that."""

    def weights_changed(self) -> None:
        pass

    def train(self, mode: bool = True):
        self.weights_changed()
        return super().train(mode)

    def _apply(self, fn, recurse=True):
        self.weights_changed()
        return super()._apply(fn, recurse)

    def _load_from_state_dict(self, *args, **kwargs):
        self.weights_changed()
        return super()._load_from_state_dict(*args, **kwargs)


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
    key_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Scaled dot-product attention on (batch, heads, tokens, head_dim) tensors.

    `key_mask`: (batch, num_keys) bool, False for keys no query may read (None: all are read).

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
    mask = None if key_mask is None else key_mask[:, None, None, :]  # broadcast over heads and queries
    if implementation == "sdpa":
        if math_kernel_on_cpu and query.device.type == "cpu":
            with sdpa_kernel(SDPBackend.MATH):
                return F.scaled_dot_product_attention(query, key, value, attn_mask=mask, dropout_p=dropout)
        return F.scaled_dot_product_attention(query, key, value, attn_mask=mask, dropout_p=dropout)
    if implementation != "eager":
        raise ValueError(f"attn_implementation must be one of {ATTENTION_IMPLEMENTATIONS}, got {implementation!r}")
    weights = torch.matmul(query, key.transpose(-2, -1)) / math.sqrt(query.shape[-1])
    if mask is not None:
        weights = weights.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(weights, dim=-1, dtype=torch.float32).to(query.dtype)
    if dropout > 0.0:
        weights = F.dropout(weights, p=dropout)
    return torch.matmul(weights, value)


class ProjectedAttention(nn.Module):
    """Query / key / value projections to `num_heads` heads, `attend`, and an output projection:
    the base of the package's three attentions (two-way, rotary memory, perceiver), which differ
    only in what they do to the projected heads in between.

    Parameter names are transformers': `q_proj`, `k_proj`, `v_proj`, `o_proj`.
    `attn_implementation` ("sdpa" or "eager") is set by the owning model;
    `math_kernel_on_cpu` as in `attend` (the original's SAM attentions force it).
    """

    def __init__(
        self,
        hidden_size: int,
        key_value_size: int,
        internal_size: int,
        num_heads: int,
        bias: bool = True,
        dropout: float = 0.0,
        math_kernel_on_cpu: bool = False,
    ):
        super().__init__()
        if internal_size % num_heads != 0:
            raise ValueError(f"the number of attention heads ({num_heads}) must divide the width {internal_size}")
        self.num_heads = num_heads
        self.q_proj = nn.Linear(hidden_size, internal_size, bias=bias)
        self.k_proj = nn.Linear(key_value_size, internal_size, bias=bias)
        self.v_proj = nn.Linear(key_value_size, internal_size, bias=bias)
        self.o_proj = nn.Linear(internal_size, hidden_size, bias=bias)
        self.dropout = dropout
        self.attn_implementation = "sdpa"
        self.math_kernel_on_cpu = math_kernel_on_cpu

    def split_heads(self, tokens: torch.Tensor) -> torch.Tensor:
        """(batch, tokens, heads * head_dim) -> (batch, heads, tokens, head_dim)."""
        return tokens.unflatten(-1, (self.num_heads, -1)).transpose(1, 2)

    def attend_heads(
        self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, key_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Projected (batch, heads, tokens, head_dim) heads -> (batch, query_tokens, hidden)."""
        dropout = self.dropout if self.training else 0.0
        attended = attend(
            query, key, value, self.attn_implementation, dropout, math_kernel_on_cpu=self.math_kernel_on_cpu, key_mask=key_mask
        )
        return self.o_proj(attended.transpose(1, 2).flatten(2))
