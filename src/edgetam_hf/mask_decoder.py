"""SAM 2 mask decoder: two-way transformer, high-resolution upscaling, IoU and object-score heads."""

from typing import NamedTuple, Sequence

import torch
from torch import nn
from transformers.activations import ACT2FN

from .configuration import EdgeTamMaskDecoderConfig
from .layers import MLP, LayerNorm2d, activate, add_residual, overwrites_activations
from .two_way_transformer import EdgeTamTwoWayTransformer


class EdgeTamMaskDecoderOutput(NamedTuple):
    """What `EdgeTamMaskDecoder.forward` returns; num_masks is 3 with multimask output, else 1."""

    mask_logits: torch.Tensor  # (batch, num_objects, num_masks, 256, 256) low-resolution logits
    iou_scores: torch.Tensor  # (batch, num_objects, num_masks) predicted IoU, after a sigmoid
    sam_output_tokens: torch.Tensor  # (batch, num_objects, num_masks, hidden) mask tokens for object pointers
    object_score_logits: torch.Tensor  # (batch, num_objects, 1) > 0 where the object is visible


def stability_scores(mask_logits: torch.Tensor, delta: float) -> torch.Tensor:
    """IoU of the mask thresholded at +delta with the mask thresholded at -delta.

    mask_logits (..., height, width) -> (...); an empty union counts as perfectly stable.
    """
    mask_logits = mask_logits.flatten(-2)
    area_intersection = torch.sum(mask_logits > delta, dim=-1).float()
    area_union = torch.sum(mask_logits > -delta, dim=-1).float()
    return torch.where(area_union > 0, area_intersection / area_union, 1.0)


def select_single_mask_by_stability(
    mask_logits: torch.Tensor,
    iou_scores: torch.Tensor,
    delta: float,
    threshold: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The original's `_dynamic_multimask_via_stability`, for a single-mask answer.

    Keeps the single-mask output (token 0) where its stability score reaches `threshold`, and
    otherwise falls back to the multimask output (tokens 1..) with the highest predicted IoU, so a
    click or a tracked frame always gets a usable mask.

    mask_logits (..., 1 + num_multimask, H, W), iou_scores (..., 1 + num_multimask)
    -> (..., 1, H, W), (..., 1).
    """
    multimask_logits, multimask_iou = mask_logits[..., 1:, :, :], iou_scores[..., 1:]
    best_index = multimask_iou.argmax(dim=-1, keepdim=True)  # (..., 1)
    best_iou = multimask_iou.gather(-1, best_index)
    best_logits = multimask_logits.gather(
        -3, best_index[..., None, None].expand(*best_index.shape, *mask_logits.shape[-2:])
    )

    single_logits, single_iou = mask_logits[..., 0:1, :, :], iou_scores[..., 0:1]
    is_stable = stability_scores(single_logits, delta) >= threshold  # (..., 1)
    chosen_logits = torch.where(is_stable[..., None, None], single_logits, best_logits)
    chosen_iou = torch.where(is_stable, single_iou, best_iou)
    return chosen_logits, chosen_iou


class EdgeTamMaskDecoder(nn.Module):
    """Predicts mask logits, IoU and object scores (original: `sam2.modeling.sam.mask_decoder.MaskDecoder`).

    Built as EdgeTAM configures it: high-resolution features on (`conv_s0`, `conv_s1`), IoU head
    with sigmoid, object-score token with a 3-layer MLP head, and the multimask tokens as object
    pointer tokens when multimask output is asked for (`use_multimask_token_for_obj_ptr`).
    Parameter names are transformers' (`output_upscaling.{0,1,3}` -> `upscale_conv1`,
    `upscale_layer_norm`, `upscale_conv2`; MLP `layers.{0,1,2}` -> `proj_in`, `layers.0`, `proj_out`).
    """

    def __init__(self, config: EdgeTamMaskDecoderConfig, attn_implementation: str = "sdpa"):
        super().__init__()
        self.config = config
        hidden_size = config.hidden_size
        self.num_mask_tokens = config.num_multimask_outputs + 1

        self.obj_score_token = nn.Embedding(1, hidden_size)
        self.iou_token = nn.Embedding(1, hidden_size)
        self.mask_tokens = nn.Embedding(self.num_mask_tokens, hidden_size)
        self.transformer = EdgeTamTwoWayTransformer(config, attn_implementation)

        self.upscale_conv1 = nn.ConvTranspose2d(hidden_size, hidden_size // 4, kernel_size=2, stride=2)
        self.upscale_layer_norm = LayerNorm2d(hidden_size // 4)
        self.upscale_conv2 = nn.ConvTranspose2d(hidden_size // 4, hidden_size // 8, kernel_size=2, stride=2)
        self.activation = ACT2FN[config.hidden_act]
        # 1x1 projections of the FPN's stride-4 and stride-8 levels, added during upscaling.
        self.conv_s0 = nn.Conv2d(hidden_size, hidden_size // 8, kernel_size=1)
        self.conv_s1 = nn.Conv2d(hidden_size, hidden_size // 4, kernel_size=1)

        self.output_hypernetworks_mlps = nn.ModuleList(
            MLP(hidden_size, hidden_size, hidden_size // 8, num_layers=3) for _ in range(self.num_mask_tokens)
        )
        self.iou_prediction_head = MLP(
            hidden_size, config.iou_head_hidden_dim, self.num_mask_tokens, config.iou_head_depth, sigmoid_output=True
        )
        self.pred_obj_score_head = MLP(hidden_size, hidden_size, 1, num_layers=3)

    def set_attn_implementation(self, attn_implementation: str) -> None:
        """Switch every attention of the decoder to "sdpa" or "eager"."""
        self.transformer.set_attn_implementation(attn_implementation)

    def project_high_resolution_features(
        self, feature_maps: Sequence[torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The FPN's two highest-resolution levels -> the features added during upscaling.

        The original applies these convolutions once per image in `SAM2Base.forward_image`, not
        per prompt. feature_maps[0] (B, 256, 256, 256), feature_maps[1] (B, 256, 128, 128)
        -> feat_s0 (B, 32, 256, 256), feat_s1 (B, 64, 128, 128).
        """
        return self.conv_s0(feature_maps[0]), self.conv_s1(feature_maps[1])

    def forward(
        self,
        image_embeddings: torch.Tensor,
        image_positional_embeddings: torch.Tensor,
        sparse_prompt_embeddings: torch.Tensor,
        dense_prompt_embeddings: torch.Tensor,
        multimask_output: bool,
        high_resolution_features: Sequence[torch.Tensor],
    ) -> EdgeTamMaskDecoderOutput:
        """Decodes the masks of `num_objects` prompted objects in each of `batch` images.

        Args:
            image_embeddings: (batch, hidden, 64, 64), the lowest-resolution FPN level.
            image_positional_embeddings: (1 or batch, hidden, 64, 64), the prompt encoder's grid.
            sparse_prompt_embeddings: (batch, num_objects, num_tokens, hidden).
            dense_prompt_embeddings: (batch or batch * num_objects, hidden, 64, 64).
            multimask_output: three masks (tokens 1..3) if True; else one mask chosen by the
                stability rule (in eval mode, when the config enables it) or token 0.
            high_resolution_features: [feat_s0 (batch, hidden / 8, 256, 256), feat_s1
                (batch, hidden / 4, 128, 128)] from `project_high_resolution_features`; rows may
                also be given per object (batch * num_objects).
        """
        every_mask = self.decode_every_mask(
            image_embeddings,
            image_positional_embeddings,
            sparse_prompt_embeddings,
            dense_prompt_embeddings,
            high_resolution_features,
        )
        return self.select_masks(every_mask, multimask_output)

    def decode_every_mask(
        self,
        image_embeddings: torch.Tensor,
        image_positional_embeddings: torch.Tensor,
        sparse_prompt_embeddings: torch.Tensor,
        dense_prompt_embeddings: torch.Tensor,
        high_resolution_features: Sequence[torch.Tensor],
    ) -> EdgeTamMaskDecoderOutput:
        """`forward` before the choice of masks: all `num_multimask_outputs + 1` masks, IoU scores and
        mask tokens of every object (token 0 is the single-mask output). The ONNX export returns
        both choices from one pass through the decoder."""
        batch_size, num_objects = sparse_prompt_embeddings.shape[:2]
        num_rows = batch_size * num_objects
        hidden_size, height, width = image_embeddings.shape[1:]

        # The decoder runs once per object: one row per (image, object), images repeated.
        output_tokens = torch.cat([self.obj_score_token.weight, self.iou_token.weight, self.mask_tokens.weight])
        sparse_rows = sparse_prompt_embeddings.reshape(num_rows, sparse_prompt_embeddings.shape[2], hidden_size)
        tokens = torch.cat([output_tokens.expand(num_rows, -1, -1), sparse_rows.to(output_tokens.dtype)], dim=1)
        image_rows = self._per_object(image_embeddings, batch_size, num_objects)
        image_rows = image_rows + self._per_object(dense_prompt_embeddings, batch_size, num_objects)
        positional_rows = self._per_object(image_positional_embeddings, batch_size, num_objects)

        tokens, image_tokens = self.transformer(image_rows, positional_rows, tokens)
        object_score_token_out = tokens[:, 0]
        iou_token_out = tokens[:, 1]
        mask_tokens_out = tokens[:, 2 : 2 + self.num_mask_tokens]  # (rows, num_mask_tokens, hidden)

        image_rows = image_tokens.transpose(1, 2).reshape(num_rows, hidden_size, height, width)
        feat_s0, feat_s1 = (self._per_object(f, batch_size, num_objects) for f in high_resolution_features)
        upscaled = self._upscale(image_rows, feat_s0, feat_s1)  # (rows, hidden / 8, 4h, 4w)
        mask_logits = self._masks_from_tokens(mask_tokens_out, upscaled)  # (rows, num_mask_tokens, 4h, 4w)
        iou_scores = self.iou_prediction_head(iou_token_out)  # (rows, num_mask_tokens)
        object_score_logits = self.pred_obj_score_head(object_score_token_out)  # (rows, 1)

        return EdgeTamMaskDecoderOutput(
            mask_logits=mask_logits.reshape(batch_size, num_objects, *mask_logits.shape[1:]),
            iou_scores=iou_scores.reshape(batch_size, num_objects, -1),
            sam_output_tokens=mask_tokens_out.reshape(batch_size, num_objects, -1, hidden_size),
            object_score_logits=object_score_logits.reshape(batch_size, num_objects, 1),
        )

    def _upscale(self, image_rows: torch.Tensor, feat_s0: torch.Tensor, feat_s1: torch.Tensor) -> torch.Tensor:
        in_place = overwrites_activations(self)
        upscaled = self.upscale_layer_norm(add_residual(self, self.upscale_conv1(image_rows), feat_s1))
        upscaled = activate(self.activation, upscaled, in_place)
        return activate(self.activation, add_residual(self, self.upscale_conv2(upscaled), feat_s0), in_place)

    def _masks_from_tokens(self, mask_tokens_out: torch.Tensor, upscaled: torch.Tensor) -> torch.Tensor:
        """Each mask token becomes, through its own MLP, the weights of a 1x1 conv on `upscaled`."""
        hypernetwork_weights = torch.stack(
            [mlp(mask_tokens_out[:, index]) for index, mlp in enumerate(self.output_hypernetworks_mlps)], dim=1
        )  # (rows, num_mask_tokens, hidden / 8)
        num_rows, channels, height, width = upscaled.shape
        mask_logits = hypernetwork_weights @ upscaled.reshape(num_rows, channels, height * width)
        return mask_logits.reshape(num_rows, -1, height, width)

    def select_masks(self, every_mask: EdgeTamMaskDecoderOutput, multimask_output: bool) -> EdgeTamMaskDecoderOutput:
        """The masks `forward` answers with, from `decode_every_mask`'s output."""
        mask_logits, iou_scores, mask_tokens = every_mask.mask_logits, every_mask.iou_scores, every_mask.sam_output_tokens
        if multimask_output:
            return every_mask._replace(
                mask_logits=mask_logits[:, :, 1:], iou_scores=iou_scores[:, :, 1:], sam_output_tokens=mask_tokens[:, :, 1:]
            )
        # With one mask the pointer token is always the single-mask token 0, even when the
        # stability rule answers with a multimask mask: it is the token seen in training.
        if self.config.dynamic_multimask_via_stability and not self.training:
            mask_logits, iou_scores = select_single_mask_by_stability(
                mask_logits,
                iou_scores,
                self.config.dynamic_multimask_stability_delta,
                self.config.dynamic_multimask_stability_thresh,
            )
        else:
            mask_logits, iou_scores = mask_logits[:, :, 0:1], iou_scores[:, :, 0:1]
        return every_mask._replace(mask_logits=mask_logits, iou_scores=iou_scores, sam_output_tokens=mask_tokens[:, :, 0:1])

    @staticmethod
    def _per_object(tensor: torch.Tensor, batch_size: int, num_objects: int) -> torch.Tensor:
        """Per-image (batch, ...) or shared (1, ...) rows -> one row per object (batch * num_objects, ...).

        Rows already given per object pass through; the values are repeated, never recomputed,
        so adding after repeating equals the original's order of operations.
        """
        num_rows = batch_size * num_objects
        if tensor.shape[0] == num_rows:
            return tensor
        if tensor.shape[0] == 1:
            return tensor.expand(num_rows, *tensor.shape[1:])
        if tensor.shape[0] == batch_size:
            return tensor.repeat_interleave(num_objects, dim=0)
        raise ValueError(
            f"expected 1, {batch_size} (images) or {num_rows} (images x objects) rows, got {tensor.shape[0]}"
        )
