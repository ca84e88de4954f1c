"""The SAM two-way transformer: prompt tokens and image tokens attend to each other in turn."""

import torch
from torch import nn

from .configuration import EdgeTamMaskDecoderConfig
from .layers import ATTENTION_IMPLEMENTATIONS, MLP, ProjectedAttention, add_residual


class EdgeTamTwoWayAttention(ProjectedAttention):
    """Multi-head attention whose projections may shrink the width by `downsample_rate`.

    Ports `sam2.modeling.sam.transformer.Attention`; its `out_proj` is named `o_proj` here, as in
    transformers. No dropout: the rate is 0.0 in every SAM head. On CPU the original runs the
    math kernel, and so do we (the mask decoder's attention is small).
    """

    def __init__(
        self,
        hidden_size: int,
        num_attention_heads: int,
        downsample_rate: int = 1,
        attn_implementation: str = "sdpa",
    ):
        internal_size = hidden_size // downsample_rate
        super().__init__(hidden_size, hidden_size, internal_size, num_attention_heads, math_kernel_on_cpu=True)
        self.attn_implementation = attn_implementation

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        """(batch, query_tokens, hidden) x (batch, key_tokens, hidden) -> (batch, query_tokens, hidden)."""
        return self.attend_heads(
            self.split_heads(self.q_proj(query)), self.split_heads(self.k_proj(key)), self.split_heads(self.v_proj(value))
        )


class EdgeTamTwoWayAttentionBlock(nn.Module):
    """Token self-attention, tokens -> image, token MLP, image -> tokens, each followed by a LayerNorm.

    Ports `sam2.modeling.sam.transformer.TwoWayAttentionBlock` (`norm{i}` -> `layer_norm{i}`,
    `mlp.layers.0/1` -> `mlp.proj_in/proj_out`).
    """

    def __init__(self, config: EdgeTamMaskDecoderConfig, skip_first_layer_pe: bool, attn_implementation: str):
        super().__init__()
        hidden_size, num_heads = config.hidden_size, config.num_attention_heads
        downsample_rate = config.attention_downsample_rate
        self.self_attn = EdgeTamTwoWayAttention(hidden_size, num_heads, 1, attn_implementation)
        self.layer_norm1 = nn.LayerNorm(hidden_size)
        self.cross_attn_token_to_image = EdgeTamTwoWayAttention(
            hidden_size, num_heads, downsample_rate, attn_implementation
        )
        self.layer_norm2 = nn.LayerNorm(hidden_size)
        # Always two linear layers with ReLU, whatever `num_hidden_layers` says (the original's
        # `MLP(..., num_layers=2)`; transformers ties it to num_hidden_layers, equal only at 2).
        self.mlp = MLP(hidden_size, config.mlp_dim, hidden_size, num_layers=2, activation="relu")
        self.layer_norm3 = nn.LayerNorm(hidden_size)
        self.layer_norm4 = nn.LayerNorm(hidden_size)
        self.cross_attn_image_to_token = EdgeTamTwoWayAttention(
            hidden_size, num_heads, downsample_rate, attn_implementation
        )
        self.skip_first_layer_pe = skip_first_layer_pe

    def forward(
        self,
        queries: torch.Tensor,
        keys: torch.Tensor,
        query_positional_embeddings: torch.Tensor,
        key_positional_embeddings: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """queries (batch, tokens, hidden), keys (batch, height * width, hidden) -> both updated."""
        if self.skip_first_layer_pe:
            # The first block replaces the tokens by their self-attention (no residual): the
            # tokens then still are their own positional encoding.
            queries = self.self_attn(queries, queries, queries)
        else:
            query = queries + query_positional_embeddings
            queries = queries + self.self_attn(query, query, queries)
        queries = self.layer_norm1(queries)

        query = queries + query_positional_embeddings
        # The image tokens do not change until this block's last step: both attentions read the
        # same encoded keys (the original adds the encoding twice, to the same values).
        key = keys + key_positional_embeddings
        queries = self.layer_norm2(queries + self.cross_attn_token_to_image(query, key, keys))

        queries = self.layer_norm3(queries + self.mlp(queries))

        query = queries + query_positional_embeddings
        attended = self.cross_attn_image_to_token(key, query, queries)
        keys = self.layer_norm4(add_residual(self, attended, keys))
        return queries, keys


class EdgeTamTwoWayTransformer(nn.Module):
    """`num_hidden_layers` two-way blocks and a last token -> image attention.

    Ports `sam2.modeling.sam.transformer.TwoWayTransformer` (`norm_final_attn` ->
    `layer_norm_final_attn`).
    """

    def __init__(self, config: EdgeTamMaskDecoderConfig, attn_implementation: str = "sdpa"):
        super().__init__()
        self.layers = nn.ModuleList(
            EdgeTamTwoWayAttentionBlock(config, (index == 0), attn_implementation)
            for index in range(config.num_hidden_layers)
        )
        self.final_attn_token_to_image = EdgeTamTwoWayAttention(
            config.hidden_size, config.num_attention_heads, config.attention_downsample_rate, attn_implementation
        )
        self.layer_norm_final_attn = nn.LayerNorm(config.hidden_size)

    def set_attn_implementation(self, attn_implementation: str) -> None:
        if attn_implementation not in ATTENTION_IMPLEMENTATIONS:
            raise ValueError(
                f"attn_implementation must be one of {ATTENTION_IMPLEMENTATIONS}, got {attn_implementation!r}"
            )
        for module in self.modules():
            if isinstance(module, EdgeTamTwoWayAttention):
                module.attn_implementation = attn_implementation

    def forward(
        self,
        image_embeddings: torch.Tensor,
        image_positional_embeddings: torch.Tensor,
        point_embeddings: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """image (batch, hidden, h, w), its encoding (same shape), tokens (batch, tokens, hidden)
        -> tokens (batch, tokens, hidden), image tokens (batch, h * w, hidden)."""
        keys = image_embeddings.flatten(2).permute(0, 2, 1)
        key_positional_embeddings = image_positional_embeddings.flatten(2).permute(0, 2, 1)
        # The prompt tokens are their own positional encoding at every block.
        queries = point_embeddings
        for layer in self.layers:
            queries, keys = layer(queries, keys, point_embeddings, key_positional_embeddings)

        query = queries + point_embeddings
        key = keys + key_positional_embeddings
        queries = self.layer_norm_final_attn(queries + self.final_attn_token_to_image(query, key, keys))
        return queries, keys
