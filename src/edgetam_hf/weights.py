"""Weight names: Meta's original EdgeTAM checkpoint -> ours (transformers' EdgeTam names).

One table of anchored patterns, read from top to bottom; the first rule whose pattern matches the
whole original key wins. Three kinds of rule:
- rename: one tensor, one or more names (several names: tied copies of one tensor);
- split: a fused tensor (the perceiver's `to_kv`) cut into equal chunks along dim 0;
- stack: several original tensors (`point_embeddings.{i}`) stacked into one, in index order.
`docs/weights.md` shows the same table for people.
"""

import re
from dataclasses import dataclass

import torch

_MLP3 = {"0": "proj_in", "1": "layers.0", "2": "proj_out"}  # a 3-layer MLP's `layers.{i}` -> ours
_MLP2 = {"0": "proj_in", "1": "proj_out"}  # the two-way transformer's 2-layer MLP
_PROMPT_MASK_EMBED = {"0": "conv1", "1": "layer_norm1", "3": "conv2", "4": "layer_norm2", "6": "conv3"}
_UPSCALING = {"0": "upscale_conv1", "1": "upscale_layer_norm", "3": "upscale_conv2"}
_PERCEIVER_FEEDFORWARD = {"0": "layer_norm", "1": "up_proj", "3": "down_proj"}
_FUSER = {"dwconv": "depthwise_conv", "norm": "layer_norm", "pwconv1": "pointwise_conv1", "pwconv2": "pointwise_conv2"}
_NORM_NUMBER = {"1": "layer_norm1", "2": "layer_norm2", "3": "layer_norm3", "4": "layer_norm4"}


def _mask_downsampler_layer(match: re.Match) -> str:
    """The memory encoder's Sequential (conv, norm, GELU) x 4 + final conv -> named layers."""
    index = int(match["index"])
    if index == 12:
        return f"memory_encoder.mask_downsampler.final_conv.{match['param']}"
    part = {0: "conv", 1: "layer_norm"}[index % 3]
    return f"memory_encoder.mask_downsampler.layers.{index // 3}.{part}.{match['param']}"


@dataclass(frozen=True)
class Rule:
    pattern: str
    targets: tuple  # str templates for re.Match.expand, callables of the match, or dicts used by `_lookup`
    kind: str = "rename"  # "rename", "split" or "stack"


def _rename(pattern: str, *targets) -> Rule:
    return Rule(pattern, targets)


ORIGINAL_TO_OURS: tuple[Rule, ...] = (
    # image encoder: timm's RepViT names live under transformers' TimmWrapper prefix
    _rename(r"image_encoder\.trunk\.body\.(?P<rest>.+)", r"vision_encoder.backbone.timm_model.\g<rest>"),
    _rename(r"image_encoder\.neck\.convs\.(?P<i>\d+)\.conv\.(?P<param>\w+)", r"vision_encoder.neck.convs.\g<i>.\g<param>"),
    # prompt encoder
    _rename(
        r"sam_prompt_encoder\.pe_layer\.positional_encoding_gaussian_matrix",
        "prompt_encoder.shared_embedding.positional_embedding",
        "shared_image_embedding.positional_embedding",
    ),
    Rule(r"sam_prompt_encoder\.point_embeddings\.(?P<index>\d+)\.weight", ("prompt_encoder.point_embed.weight",), "stack"),
    _rename(r"sam_prompt_encoder\.(?P<name>not_a_point_embed|no_mask_embed)\.weight", r"prompt_encoder.\g<name>.weight"),
    _rename(
        r"sam_prompt_encoder\.mask_downscaling\.(?P<index>[01346])\.(?P<param>\w+)",
        lambda m: f"prompt_encoder.mask_embed.{_PROMPT_MASK_EMBED[m['index']]}.{m['param']}",
    ),
    # mask decoder: two-way transformer
    _rename(
        r"sam_mask_decoder\.transformer\.(?P<block>layers\.\d+\.\w+|final_attn_token_to_image)\.out_proj\.(?P<param>\w+)",
        r"mask_decoder.transformer.\g<block>.o_proj.\g<param>",
    ),
    _rename(
        r"sam_mask_decoder\.transformer\.(?P<block>layers\.\d+\.\w+|final_attn_token_to_image)\.(?P<proj>[qkv]_proj)\.(?P<param>\w+)",
        r"mask_decoder.transformer.\g<block>.\g<proj>.\g<param>",
    ),
    _rename(
        r"sam_mask_decoder\.transformer\.layers\.(?P<i>\d+)\.norm(?P<n>[1-4])\.(?P<param>\w+)",
        lambda m: f"mask_decoder.transformer.layers.{m['i']}.{_NORM_NUMBER[m['n']]}.{m['param']}",
    ),
    _rename(
        r"sam_mask_decoder\.transformer\.layers\.(?P<i>\d+)\.mlp\.layers\.(?P<index>[01])\.(?P<param>\w+)",
        lambda m: f"mask_decoder.transformer.layers.{m['i']}.mlp.{_MLP2[m['index']]}.{m['param']}",
    ),
    _rename(
        r"sam_mask_decoder\.transformer\.norm_final_attn\.(?P<param>\w+)",
        r"mask_decoder.transformer.layer_norm_final_attn.\g<param>",
    ),
    # mask decoder: heads
    _rename(
        r"sam_mask_decoder\.(?P<name>iou_token|mask_tokens|obj_score_token|conv_s0|conv_s1)\.(?P<param>\w+)",
        r"mask_decoder.\g<name>.\g<param>",
    ),
    _rename(
        r"sam_mask_decoder\.output_upscaling\.(?P<index>[013])\.(?P<param>\w+)",
        lambda m: f"mask_decoder.{_UPSCALING[m['index']]}.{m['param']}",
    ),
    _rename(
        r"sam_mask_decoder\.(?P<mlp>output_hypernetworks_mlps\.\d+|iou_prediction_head|pred_obj_score_head)"
        r"\.layers\.(?P<index>[012])\.(?P<param>\w+)",
        lambda m: f"mask_decoder.{m['mlp']}.{_MLP3[m['index']]}.{m['param']}",
    ),
    # video: memory bookkeeping embeddings and the object pointer projection
    _rename(r"no_mem_embed", "no_memory_embedding"),
    _rename(r"no_mem_pos_enc", "no_memory_positional_encoding"),
    _rename(r"no_obj_ptr", "no_object_pointer"),
    _rename(r"maskmem_tpos_enc", "memory_temporal_positional_encoding"),
    _rename(r"mask_downsample\.(?P<param>\w+)", r"mask_downsample.\g<param>"),
    _rename(
        r"obj_ptr_proj\.layers\.(?P<index>[012])\.(?P<param>\w+)",
        lambda m: f"object_pointer_proj.{_MLP3[m['index']]}.{m['param']}",
    ),
    # video: memory encoder
    _rename(r"memory_encoder\.mask_downsampler\.encoder\.(?P<index>\d+)\.(?P<param>\w+)", _mask_downsampler_layer),
    _rename(r"memory_encoder\.pix_feat_proj\.(?P<param>\w+)", r"memory_encoder.feature_projection.\g<param>"),
    _rename(r"memory_encoder\.out_proj\.(?P<param>\w+)", r"memory_encoder.projection.\g<param>"),
    _rename(r"memory_encoder\.fuser\.layers\.(?P<i>\d+)\.gamma", r"memory_encoder.memory_fuser.layers.\g<i>.scale"),
    _rename(
        r"memory_encoder\.fuser\.layers\.(?P<i>\d+)\.(?P<name>dwconv|norm|pwconv1|pwconv2)\.(?P<param>\w+)",
        lambda m: f"memory_encoder.memory_fuser.layers.{m['i']}.{_FUSER[m['name']]}.{m['param']}",
    ),
    # video: 2D spatial perceiver
    _rename(r"spatial_perceiver\.latents", "spatial_perceiver.latents_1d"),
    _rename(r"spatial_perceiver\.latents_2d", "spatial_perceiver.latents_2d"),
    _rename(r"spatial_perceiver\.norm\.(?P<param>\w+)", r"spatial_perceiver.layer_norm.\g<param>"),
    _rename(r"spatial_perceiver\.layers\.(?P<i>\d+)\.attn\.norm_x\.(?P<param>\w+)", r"spatial_perceiver.layers.\g<i>.layer_norm_input.\g<param>"),
    _rename(
        r"spatial_perceiver\.layers\.(?P<i>\d+)\.attn\.norm_latents\.(?P<param>\w+)",
        r"spatial_perceiver.layers.\g<i>.layer_norm_latents.\g<param>",
    ),
    _rename(r"spatial_perceiver\.layers\.(?P<i>\d+)\.self_attn\.norm\.(?P<param>\w+)", r"spatial_perceiver.layers.\g<i>.layer_norm_self.\g<param>"),
    _rename(
        r"spatial_perceiver\.layers\.(?P<i>\d+)\.(?P<attn>attn|self_attn)\.to_q\.weight",
        lambda m: f"spatial_perceiver.layers.{m['i']}.{_perceiver_attention(m)}.q_proj.weight",
    ),
    _rename(
        r"spatial_perceiver\.layers\.(?P<i>\d+)\.(?P<attn>attn|self_attn)\.to_out\.weight",
        lambda m: f"spatial_perceiver.layers.{m['i']}.{_perceiver_attention(m)}.o_proj.weight",
    ),
    Rule(
        r"spatial_perceiver\.layers\.(?P<i>\d+)\.(?P<attn>attn|self_attn)\.to_kv\.weight",
        (
            lambda m: f"spatial_perceiver.layers.{m['i']}.{_perceiver_attention(m)}.k_proj.weight",
            lambda m: f"spatial_perceiver.layers.{m['i']}.{_perceiver_attention(m)}.v_proj.weight",
        ),
        "split",
    ),
    _rename(
        r"spatial_perceiver\.layers\.(?P<i>\d+)\.(?P<ff>ff|self_ff)\.(?P<index>[013])\.(?P<param>\w+)",
        lambda m: f"spatial_perceiver.layers.{m['i']}.{'mlp' if m['ff'] == 'ff' else 'self_mlp'}."
        f"{_PERCEIVER_FEEDFORWARD[m['index']]}.{m['param']}",
    ),
    # video: memory attention
    _rename(
        r"memory_attention\.layers\.(?P<i>\d+)\.(?P<attn>self_attn|cross_attn_image)\.out_proj\.(?P<param>\w+)",
        r"memory_attention.layers.\g<i>.\g<attn>.o_proj.\g<param>",
    ),
    _rename(
        r"memory_attention\.layers\.(?P<i>\d+)\.(?P<attn>self_attn|cross_attn_image)\.(?P<proj>[qkv]_proj)\.(?P<param>\w+)",
        r"memory_attention.layers.\g<i>.\g<attn>.\g<proj>.\g<param>",
    ),
    _rename(
        r"memory_attention\.layers\.(?P<i>\d+)\.linear(?P<n>[12])\.(?P<param>\w+)",
        lambda m: f"memory_attention.layers.{m['i']}.mlp.{'up_proj' if m['n'] == '1' else 'down_proj'}.{m['param']}",
    ),
    _rename(
        r"memory_attention\.layers\.(?P<i>\d+)\.norm(?P<n>[1-3])\.(?P<param>\w+)",
        lambda m: f"memory_attention.layers.{m['i']}.{_NORM_NUMBER[m['n']]}.{m['param']}",
    ),
    _rename(r"memory_attention\.norm\.(?P<param>\w+)", r"memory_attention.layer_norm.\g<param>"),
)

# Buffers our modules have that the original checkpoint never stored (Meta's file was saved
# without BatchNorm's step counters); they are created as zero, which is their value in eval.
_BATCHNORM_COUNTER = re.compile(r"vision_encoder\.backbone\.timm_model\..+\.num_batches_tracked")


def _perceiver_attention(match: re.Match) -> str:
    return "cross_attention" if match["attn"] == "attn" else "self_attention"


def _target_name(template, match: re.Match) -> str:
    return template(match) if callable(template) else match.expand(template)


def convert_original_state_dict(original: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Maps every key of an original EdgeTAM state dict to ours.

    Raises a ValueError naming the keys that no rule matches, so nothing is silently dropped.
    """
    converted: dict[str, torch.Tensor] = {}
    stacks: dict[str, dict[int, torch.Tensor]] = {}
    unmatched = []
    for key, tensor in original.items():
        rule, match = _find_rule(key)
        if rule is None:
            unmatched.append(key)
        elif rule.kind == "rename":
            # Copies, not aliases: the model keeps each name as its own tensor, and
            # transformers' loader would otherwise tie them (and refuse to save the result).
            for index, template in enumerate(rule.targets):
                converted[_target_name(template, match)] = tensor if index == 0 else tensor.clone()
        elif rule.kind == "split":
            for template, chunk in zip(rule.targets, tensor.chunk(len(rule.targets), dim=0)):
                converted[_target_name(template, match)] = chunk.clone()
        else:  # stack
            stacks.setdefault(_target_name(rule.targets[0], match), {})[int(match["index"])] = tensor
    if unmatched:
        raise ValueError(
            f"{len(unmatched)} key(s) of the checkpoint are not EdgeTAM weights this package knows: "
            f"{_preview(unmatched)}"
        )
    for name, rows in stacks.items():
        converted[name] = torch.cat([rows[index] for index in sorted(rows)], dim=0)
    return converted


def _find_rule(key: str):
    for rule in ORIGINAL_TO_OURS:
        match = re.fullmatch(rule.pattern, key)
        if match is not None:
            return rule, match
    return None, None


def add_missing_batchnorm_counters(state_dict: dict[str, torch.Tensor], expected_keys) -> None:
    """Adds the zero BatchNorm step counters the original checkpoint does not store."""
    for key in expected_keys:
        if key not in state_dict and _BATCHNORM_COUNTER.fullmatch(key):
            state_dict[key] = torch.tensor(0, dtype=torch.long)


def check_state_dict(state_dict: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    """Raises a ValueError naming every missing, unexpected and wrongly shaped key."""
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    wrong_shapes = [
        f"{key}: checkpoint {tuple(state_dict[key].shape)} vs model {tuple(expected[key].shape)}"
        for key in sorted(set(state_dict) & set(expected))
        if state_dict[key].shape != expected[key].shape
    ]
    problems = weight_problems(missing, unexpected, wrong_shapes)
    if problems:
        raise ValueError("the weights do not fit the model; " + problems)


def weight_problems(missing: list[str], unexpected: list[str], wrong_shapes: list[str]) -> str:
    """`missing 2: a, b; wrong shape 1: c: checkpoint (1,) vs model (2,)`; empty when all fit."""
    groups = (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong_shapes))
    return "; ".join(f"{label} {len(keys)}: {_preview(keys)}" for label, keys in groups if keys)


def _preview(items: list[str], limit: int = 8) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f", ... ({len(items) - limit} more)" if len(items) > limit else "")


def read_original_checkpoint(path) -> dict[str, torch.Tensor]:
    """Reads Meta's `{"model": state_dict}` file, with errors that say what is wrong with it."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as error:  # torch raises several types for a truncated or foreign file
        raise ValueError(f"{path} is not a readable PyTorch checkpoint ({type(error).__name__}: {error})") from error
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("model"), dict):
        found = sorted(checkpoint)[:8] if isinstance(checkpoint, dict) else type(checkpoint).__name__
        raise ValueError(f"{path} is not an original EdgeTAM checkpoint: expected {{'model': state_dict}}, found {found}")
    return checkpoint["model"]


def load_original_state_dict(model: torch.nn.Module, original: dict[str, torch.Tensor]) -> None:
    """Loads an original EdgeTAM state dict into one of our models, checking every key and shape."""
    model.load_state_dict(fit_original_state_dict(model, original), strict=True)


def fit_original_state_dict(model: torch.nn.Module, original: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """An original EdgeTAM state dict in our names, with exactly `model`'s keys and shapes.

    Original weights the model has no part for (the video parts, for the image model) are left
    out only when the model lists them in `_keys_to_ignore_on_load_unexpected`. `model` may live on
    the meta device: only its names and shapes are read.
    """
    converted = convert_original_state_dict(original)
    expected = model.state_dict()
    add_missing_batchnorm_counters(converted, expected)
    ignored = [re.compile(pattern) for pattern in getattr(model, "_keys_to_ignore_on_load_unexpected", None) or []]
    converted = {
        key: tensor
        for key, tensor in converted.items()
        if key in expected or not any(pattern.search(key) for pattern in ignored)
    }
    check_state_dict(converted, expected)
    return converted
