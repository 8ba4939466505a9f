"""Fitting a source network to a target dataset it was not trained on: another channel count
(grey photos on an RGB network, or the reverse) and another image size.

Channels, in the first convolution's weights:
- a 3-channel network on 1-channel images: the kernels are summed over their input channels,
  so a grey image gives exactly what the network gave for that image replicated to RGB
  (conv(W, [g, g, g]) = conv(W_r + W_g + W_b, g));
- a 1-channel network on 3-channel images: the kernel is replicated over the channels and
  divided by their number, so an RGB image whose channels are equal gives what the grey
  image gave.
The normalisation follows: one channel gets the mean of the source's means and stds, three
channels repeat the one. The equalities above are exact when the source's per-channel
statistics are equal (and approximately so otherwise).

Size: images are resized to the source's input size (features are learnt at a scale).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from cnnzoo.errors import ShapeError


def first_conv(model: nn.Module) -> tuple[str, nn.Conv2d]:
    """The first Conv2d in module order: the stem that sees the image's channels."""
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            return name, m
    raise ShapeError(f"{getattr(model, 'model_name', type(model).__name__)} has no Conv2d "
                     "whose input channels could be adapted")


def adapt_in_chans(model: nn.Module, in_chans: int) -> str | None:
    """Change `model`'s first conv to take `in_chans` channels (see the module doc), in place.
    Returns what was done, for the run to say, or None when nothing was needed."""
    name, conv = first_conv(model)
    have = conv.in_channels
    if have == in_chans:
        return None
    if conv.groups != 1 or not (have == 1 or in_chans == 1):
        raise ShapeError(f"cannot adapt {name} ({have} input channels) to {in_chans}-channel "
                         "images: only 1 <-> N channels are")
    w = conv.weight.detach()
    if in_chans == 1:
        new_w, how = w.sum(1, keepdim=True), "summed over its input channels"
    else:
        new_w, how = w.repeat(1, in_chans, 1, 1) / in_chans, f"replicated x{in_chans} / {in_chans}"
    new = nn.Conv2d(in_chans, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                    conv.dilation, bias=conv.bias is not None, padding_mode=conv.padding_mode,
                    device=w.device, dtype=w.dtype)
    with torch.no_grad():
        new.weight.copy_(new_w)
        if conv.bias is not None:
            new.bias.copy_(conv.bias)
    parent, _, leaf = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, leaf, new)
    if hasattr(model, "in_chans"):
        model.in_chans = in_chans
    size = getattr(model, "default_input_size", None)
    if size is not None:  # feature_info measures at this size
        model.default_input_size = (in_chans, *size[1:])
    return f"{have}-channel {name} {how} for {in_chans}-channel images"


def adapt_stats(mean, std, in_chans: int) -> tuple[list[float], list[float]]:
    """The source's normalisation for `in_chans`-channel images (module doc)."""
    mean, std = list(mean), list(std)
    if len(mean) == in_chans:
        return mean, std
    if in_chans == 1:
        return [sum(mean) / len(mean)], [sum(std) / len(std)]
    if len(mean) == 1:
        return mean * in_chans, std * in_chans
    raise ShapeError(f"cannot adapt {len(mean)}-channel statistics to {in_chans} channels")


def resize_images(images: torch.Tensor, size_hw, chunk: int = 4096) -> torch.Tensor:
    """uint8 [N, C, H, W] resized to `size_hw` (bilinear, antialiased when shrinking), chunk
    by chunk so a large set is never held as floats at once."""
    out = torch.empty((len(images), images.shape[1], *size_hw), dtype=torch.uint8)
    for i in range(0, len(images), chunk):
        x = images[i:i + chunk].float()
        x = F.interpolate(x, size=tuple(size_hw), mode="bilinear", align_corners=False,
                          antialias=True)
        out[i:i + chunk] = x.round().clamp_(0, 255).to(torch.uint8)
    return out

