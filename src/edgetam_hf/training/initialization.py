"""Initial weights for training from scratch, as the original's modules get them.

`EdgeTamModel(config)` initialises every linear, convolution and embedding from N(0, 0.02)
(transformers' `_init_weights`, there so that a fresh model is well defined before a checkpoint
is loaded over it). Trained from there, a small model ignores its prompt: every attention starts
uniform (queries and keys of norm ~0.02 give dot products near 0), so the first self-attention
hands all tokens the same mean and the prompt's position cannot steer cross-attention, and each
of the three-layer hypernetworks passes ~0.16 of its input on per layer (at the first step the
point, padding, IoU and object-score tokens of a tiny model all get the same gradient). The mask
tokens then learn a prompt-independent mask first, an easy minimum of the loss; the tiny model
trained this way gave both objects of the demo the same mask. SAM 2 trains from PyTorch's own
defaults (Kaiming-uniform layers, N(0, 1) embeddings such as the point and output tokens). On a
single batch a tiny model from these defaults fits its masks several times faster (Dice loss
0.06 against 0.44 after 75 steps of AdamW 1e-3); that alone did not make the shapes model read
its clicks within 1500 steps (docs/finetuning.md).
"""

from torch import nn

from ..modeling import EdgeTamPreTrainedModel


def initialise_for_training_from_scratch(model: EdgeTamPreTrainedModel) -> EdgeTamPreTrainedModel:
    """Re-draws `model`'s layers with PyTorch's default initialisation (in place; returns it).

    Seed torch beforehand for repeatable weights. Normalisation layers, the random-Fourier
    frequencies and the learned embeddings that are parameters (the no-memory embedding; in the
    video model the temporal encodings and the no-object pointer) keep the values the model's
    constructor gave them.
    """
    if not isinstance(model, EdgeTamPreTrainedModel):
        raise TypeError(f"model must be an EdgeTamModel or EdgeTamVideoModel, got {type(model).__name__}")
    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            module.reset_parameters()
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight)  # nn.Embedding's own default
    return model


def freeze_batch_norm_statistics(model: nn.Module) -> nn.Module:
    """Puts every BatchNorm of `model` in eval mode (in place; returns it): its running statistics
    stop moving and normalise in training as in inference; its scale and shift still train.

    From scratch, with batches of a few near-identical rendered scenes, batch statistics differ
    from the running averages inference uses, so a model can fit its batches and fail held-out
    images. Fresh statistics (mean 0, variance 1) leave each BatchNorm an affine layer; the
    architecture stays EdgeTAM's. Call it after `model.train()`, which would undo it.
    """
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.eval()
    return model
