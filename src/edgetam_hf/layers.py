"""Small building blocks shared by several components: channels-first LayerNorm, MLP, attention."""

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from transformers.activations import ACT2FN, GELUActivation


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
        if overwrites_activations(self):  # the same ops, over `centred`
            normalised = centred.div_(torch.sqrt(variance + self.eps))
            return normalised.mul_(self.weight[:, None, None]).add_(self.bias[:, None, None])
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


def overwrites_activations(module: nn.Module) -> bool:
    """Whether `module` may compute over the activations it made itself, in place: in eager
    inference (eval mode, gradients off), where autograd keeps none of them.

    The same kernels on the same values, so the same results; what it saves is a fresh tensor per
    op, which at the trunk's 256x256 maps (12-25 MiB) glibc maps and page-faults afresh on every
    frame. Not while torch.compile / torch.export trace (they take out-of-place graphs), nor under
    autocast, whose per-op dtypes an in-place op would not follow."""
    return not module.training and not torch.is_grad_enabled() and plain_eager()


def plain_eager() -> bool:
    """Neither under autocast (which picks each op's dtype) nor inside a torch.compile /
    torch.export trace (which takes the plain graph): where the eager shortcuts of this module
    may replace an op by another computing the same values."""
    autocast = torch.is_autocast_enabled("cpu") or torch.is_autocast_enabled("cuda")
    return not autocast and not torch.compiler.is_compiling()


def add_residual(module: nn.Module, branch: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
    """`residual + branch`; when `module` overwrites its activations, into `branch`, a fresh
    output of the module's own (the same sums). `residual` may broadcast against `branch` (a frame
    shared by every object's row)."""
    in_place = overwrites_activations(module) and branch.dtype == residual.dtype
    if in_place and torch.broadcast_shapes(branch.shape, residual.shape) == branch.shape:
        return branch.add_(residual)
    return residual + branch


def activate(activation: nn.Module, hidden_states: torch.Tensor, in_place: bool) -> torch.Tensor:
    """`activation(hidden_states)`, written over `hidden_states` when `in_place` and the activation
    has an in-place kernel (ReLU, exact GELU)."""
    if in_place and isinstance(activation, nn.ReLU):
        return hidden_states.relu_()
    if in_place and isinstance(activation, GELUActivation) and activation.act is F.gelu:
        return torch.ops.aten.gelu_(hidden_states)
    return activation(hidden_states)


def batch_norm(norm: nn.BatchNorm2d, maps: torch.Tensor, in_place: bool) -> torch.Tensor:
    """`norm(maps)`, written over `maps` when `in_place` and `norm` is in eval mode (the kernel
    `norm` itself runs, so the same values)."""
    if not in_place or norm.training or norm.running_mean is None or maps.dtype != norm.weight.dtype:
        return norm(maps)
    no_statistics = maps.new_empty(0)
    torch.ops.aten.native_batch_norm.out(
        maps,
        norm.weight,
        norm.bias,
        norm.running_mean,
        norm.running_var,
        False,
        0.0,
        norm.eps,
        out=maps,
        save_mean=no_statistics,
        save_invstd=no_statistics,
    )
    return maps


def pointwise_conv(maps: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """A 1x1 conv (stride 1, no groups) of `maps` (batch, in, H, W) by `weight` (out, in, 1, 1):
    on channels-first contiguous maps in eager runs, as the matrix product it is; else the conv
    (channels-last maps; autocast, which picks the conv's dtype; torch.export / compile traces,
    which keep the plain conv graph).

    oneDNN reorders channels-first maps to its blocked layout and back, through two fresh buffers
    the size of its input and output (37 MiB for a 48 -> 96 conv at 256x256), which the C
    allocator maps and page-faults afresh on every frame; BLAS reads the maps as they are. The sum
    over the channels may round differently (~1e-7 relative)."""
    if not maps.is_contiguous() or not plain_eager():
        return F.conv2d(maps, weight, bias)
    batch_size, channels, height, width = maps.shape
    out_channels = weight.shape[0]
    weight = weight.view(out_channels, channels)
    rows = maps.view(batch_size, channels, height * width)
    if batch_size == 1:  # every video frame: the plain matrix product, which matmul would batch
        product = torch.mm(weight, rows[0]) if bias is None else torch.addmm(bias[:, None], weight, rows[0])
        return product.view(1, out_channels, height, width)
    products = torch.matmul(weight, rows)
    return (products if bias is None else products + bias[:, None]).view(batch_size, out_channels, height, width)


def compose_pointwise_convs(first: nn.Conv2d, second: nn.Conv2d) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The float32 weight (out, in, 1, 1) and bias (out,) of the one 1x1 conv that computes
    `second(first(maps))`, or None unless both are plain 1x1 convs (stride 1, no padding, no groups).

    Composed in float32 whatever the convs' dtype (cast them to the maps' dtype to use them): the
    product is exact math, and it skips rounding the wider map between the two convs."""
    if not all(_is_plain_pointwise(conv) for conv in (first, second)):
        return None
    second_weight = second.weight.flatten(1).float()  # (out, middle)
    weight = second_weight @ first.weight.flatten(1).float()  # (out, in)
    bias = torch.zeros(second.out_channels, device=weight.device)
    if first.bias is not None:
        bias += second_weight @ first.bias.float()
    if second.bias is not None:
        bias += second.bias.float()
    return weight[:, :, None, None], bias


def _is_plain_pointwise(conv: nn.Module) -> bool:
    return (
        isinstance(conv, nn.Conv2d)
        and conv.kernel_size == (1, 1)
        and conv.stride == (1, 1)
        and conv.padding == (0, 0)
        and conv.dilation == (1, 1)
        and conv.groups == 1
    )


class ChangeAwareModule(nn.Module):
    """A module told when what it computes may change: `weights_changed()` runs on a mode switch
    (`train()` / `eval()` that changes the mode), on `load_state_dict` and on moves and casts
    (`to()`, `float()`, ...).
    Modules that keep something derived from their weights override it to drop that."""

    def weights_changed(self) -> None:
        pass

    def train(self, mode: bool = True):
        if mode != self.training:  # eval() of a model in eval changes nothing
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
