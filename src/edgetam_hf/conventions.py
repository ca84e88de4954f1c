"""The numbers of the original's prompt and mask-logit conventions, stated once.

Point labels, as `sam2.modeling.sam.prompt_encoder.PromptEncoder` reads them: a box enters the
prompt encoder as its two corners with labels 2 and 3, placed before the clicks. This module
imports nothing, so the NumPy-only ONNX runtime uses it too.
"""

LABEL_NEGATIVE = 0  # a click on the background
LABEL_POSITIVE = 1  # a click on the object
LABEL_BOX_TOP_LEFT = 2
LABEL_BOX_BOTTOM_RIGHT = 3
BOX_CORNER_LABELS = (LABEL_BOX_TOP_LEFT, LABEL_BOX_BOTTOM_RIGHT)
PROMPT_LABELS = (LABEL_NEGATIVE, LABEL_POSITIVE, LABEL_BOX_TOP_LEFT, LABEL_BOX_BOTTOM_RIGHT)
LABEL_PADDING = -1  # "not a point": its encoding is replaced by `not_a_point_embed`
LABEL_IGNORED = -10  # transformers' processor pads ragged point lists with it: a zero embedding

# The original clamps low-resolution mask logits to this range where they leave a predictor or
# come back as a mask prompt (`SAM2ImagePredictor.predict`, `SAM2VideoPredictor.add_new_points_or_box`:
# "to avoid rare numerical issues"); image-resolution masks are upsampled from unclamped logits.
MASK_LOGITS_CLAMP = 32.0
