"""Prompt encoder: clicks, boxes and mask prompts -> sparse and dense embeddings for the mask decoder."""

import torch
from torch import nn
from transformers.activations import ACT2FN

from .configuration import EdgeTamPromptEncoderConfig
from .conventions import LABEL_BOX_BOTTOM_RIGHT, LABEL_BOX_TOP_LEFT, LABEL_IGNORED, LABEL_PADDING
from .layers import LayerNorm2d
from .position_encoding import RandomFourierPositionEncoding


class EdgeTamMaskEmbedding(nn.Module):
    """Downscales a low-resolution mask prompt 4x into the decoder's channel space.

    Ports the original `PromptEncoder.mask_downscaling` (an `nn.Sequential` of conv, LayerNorm2d,
    GELU, conv, LayerNorm2d, GELU, 1x1 conv) with transformers' parameter names.
    """

    def __init__(self, config: EdgeTamPromptEncoderConfig):
        super().__init__()
        hidden_channels = config.mask_input_channels // 4
        self.conv1 = nn.Conv2d(1, hidden_channels, kernel_size=2, stride=2)
        self.layer_norm1 = LayerNorm2d(hidden_channels, eps=config.layer_norm_eps)
        self.conv2 = nn.Conv2d(hidden_channels, config.mask_input_channels, kernel_size=2, stride=2)
        self.layer_norm2 = LayerNorm2d(config.mask_input_channels, eps=config.layer_norm_eps)
        self.conv3 = nn.Conv2d(config.mask_input_channels, config.hidden_size, kernel_size=1)
        self.activation = ACT2FN[config.hidden_act]

    def forward(self, masks: torch.Tensor) -> torch.Tensor:
        """(N, 1, 256, 256) mask logits -> (N, hidden_size, 64, 64)."""
        hidden_states = self.activation(self.layer_norm1(self.conv1(masks)))
        hidden_states = self.activation(self.layer_norm2(self.conv2(hidden_states)))
        return self.conv3(hidden_states)


class EdgeTamPromptEncoder(nn.Module):
    """Embeds point, box and mask prompts (original: `sam2.modeling.sam.prompt_encoder.PromptEncoder`).

    Sparse prompts follow the path every original caller takes (`SAM2ImagePredictor._predict`,
    `SAM2Base._forward_sam_heads`): a box becomes two corner points with labels 2 and 3 placed
    *before* the clicks, and one padding point (label -1) is appended after all of them, so a box
    alone gives 3 tokens and n clicks give n + 1. Transformers' port puts the box after the clicks;
    the decoder output is the same up to float summation order because attention does not see
    token order.
    """

    def __init__(self, config: EdgeTamPromptEncoderConfig):
        super().__init__()
        self.config = config
        self.hidden_size = config.hidden_size
        self.input_image_size = config.image_size
        embedding_side = config.image_size // config.patch_size
        self.image_embedding_size = (embedding_side, embedding_side)
        self.mask_input_size = (4 * embedding_side, 4 * embedding_side)

        # One frequency matrix encodes both the prompts and the image grid, as in the original.
        self.shared_embedding = RandomFourierPositionEncoding(config.hidden_size, scale=config.scale)
        self.mask_embed = EdgeTamMaskEmbedding(config)
        self.no_mask_embed = nn.Embedding(1, config.hidden_size)
        # Rows: negative click, positive click, box top-left corner, box bottom-right corner.
        self.point_embed = nn.Embedding(config.num_point_embeddings, config.hidden_size)
        self.not_a_point_embed = nn.Embedding(1, config.hidden_size)

    def get_image_positional_embeddings(self) -> torch.Tensor:
        """The encoding of the image-embedding grid (original: `get_dense_pe`): (1, hidden_size, 64, 64)."""
        return self.shared_embedding.grid(*self.image_embedding_size).unsqueeze(0)

    def forward(
        self,
        input_points: torch.Tensor | None = None,
        input_labels: torch.Tensor | None = None,
        input_boxes: torch.Tensor | None = None,
        input_masks: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Embeds the prompts of `batch` images with `num_objects` objects each.

        Args:
            input_points: (batch, num_objects, num_points, 2) pixel (x, y) in the 1024x1024 input.
            input_labels: (batch, num_objects, num_points): 1 positive, 0 negative, -1 padding
                ("not a point"), 2 / 3 box corners, -10 ignored (transformers' processor padding).
            input_boxes: (batch, num_objects, 4) pixel (x0, y0, x1, y1).
            input_masks: (N, 1, 256, 256) mask logits, N = batch or batch * num_objects; a
                (batch, num_objects, 1, 256, 256) tensor is flattened to the latter.

        Returns:
            sparse_embeddings: (batch, num_objects, num_tokens, hidden_size), where num_tokens is
                2 per box + num_points + 1 padding token. No token at all when there is no box and no
                point (the original image predictor given a mask only): (batch, num_objects, 0,
                hidden_size) for zero-length points, (N or 1, 1, 0, hidden_size) for none.
            dense_embeddings: (N, hidden_size, 64, 64) from the masks, else the `no_mask_embed`
                broadcast to (batch, hidden_size, 64, 64).
        """
        if input_points is not None and input_labels is None:
            raise ValueError("input_labels must be given with input_points")
        if input_masks is not None and input_masks.dim() == 5:
            input_masks = input_masks.flatten(0, 1)

        coordinates, labels = self._collect_sparse_prompts(input_points, input_labels, input_boxes)
        if coordinates is None:
            batch_size = input_masks.shape[0] if input_masks is not None else 1
            sparse_embeddings = self.no_mask_embed.weight.new_zeros(batch_size, 1, 0, self.hidden_size)
        elif coordinates.shape[2] == 0:
            # No click and no box (a mask prompt alone): the original image predictor passes no
            # points at all, so there is no padding token either.
            batch_size = coordinates.shape[0]
            sparse_embeddings = self.no_mask_embed.weight.new_zeros(*coordinates.shape[:2], 0, self.hidden_size)
        else:
            batch_size = coordinates.shape[0]
            sparse_embeddings = self._embed_points(*self._append_padding_point(coordinates, labels))

        if input_masks is not None:
            dense_embeddings = self.mask_embed(input_masks)
        else:
            dense_embeddings = self.no_mask_embed.weight.reshape(1, -1, 1, 1).expand(
                batch_size, -1, *self.image_embedding_size
            )
        return sparse_embeddings, dense_embeddings

    def _collect_sparse_prompts(
        self,
        points: torch.Tensor | None,
        labels: torch.Tensor | None,
        boxes: torch.Tensor | None,
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Boxes as corner points, then the clicks: (batch, num_objects, n, 2) and labels; (None, None) if neither."""
        coordinate_parts, label_parts = [], []
        if boxes is not None:
            corners = boxes.reshape(*boxes.shape[:-1], 2, 2)  # (batch, num_objects, 2, 2)
            corner_labels = torch.tensor(
                [LABEL_BOX_TOP_LEFT, LABEL_BOX_BOTTOM_RIGHT], dtype=torch.long, device=boxes.device
            ).expand(*boxes.shape[:-1], 2)
            coordinate_parts.append(corners)
            label_parts.append(corner_labels)
        if points is not None:
            coordinate_parts.append(points)
            label_parts.append(labels.long())
        if not coordinate_parts:
            return None, None

        # The original predictors hand float32 pixel coordinates over.
        return torch.cat([part.float() for part in coordinate_parts], dim=2), torch.cat(label_parts, dim=2)

    @staticmethod
    def _append_padding_point(coordinates: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Shift to the pixel centre, then append the (0, 0) point labelled -1, in the original's order."""
        coordinates = nn.functional.pad(coordinates + 0.5, (0, 0, 0, 1), value=0.0)
        labels = nn.functional.pad(labels, (0, 1), value=LABEL_PADDING)
        return coordinates, labels

    def _embed_points(self, coordinates: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """(batch, num_objects, num_tokens, 2) pixel-centre coordinates -> (..., hidden_size)."""
        # Divide before encoding, as `forward_with_coords` does, so the rounding is the original's.
        normalised = coordinates / self.input_image_size
        embeddings = self.shared_embedding(normalised)
        labels = labels[..., None]
        embeddings = torch.where(labels == LABEL_PADDING, self.not_a_point_embed.weight, embeddings)
        embeddings = torch.where(labels == LABEL_IGNORED, torch.zeros_like(embeddings), embeddings)
        # Labels 0..3 add their learned type embedding; other labels add nothing, as in the original.
        has_type = (labels >= 0) & (labels < self.point_embed.num_embeddings)
        type_embeddings = self.point_embed(labels.squeeze(-1).clamp(0, self.point_embed.num_embeddings - 1))
        return torch.where(has_type, embeddings + type_embeddings, embeddings)
