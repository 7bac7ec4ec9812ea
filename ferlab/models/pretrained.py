"""Pretrained configurations: one record per weights entry of a backbone (timm's ``pretrained_cfg``).

A record is a plain dict (YAML / JSON friendly):

- ``mean``, ``std``: the input normalisation on [0, 1] RGB (``ferlab.data.transforms.Normalize``);
- ``input_size``: the native input side; ``min_input_size``: the smallest side the built network
  accepts (1: any);
- ``trained_on``, ``provenance``, ``licence``: what the weights were trained on, by whom, under
  which terms (None for random initialisation);
- ``package``, ``file``, ``install``: where named weights come from (an installed package, never a
  download) and the command that installs them;
- ``source``: the user checkpoint files the backbone reads (:mod:`ferlab.models.weights`).

``create_backbone`` stores the resolved record (plus ``backbone``, ``tag`` and ``weights``) on the
model as ``model.pretrained_cfg``; the trainer takes its normalisation from there unless the run's
config sets ``mean`` / ``std``.
"""
from __future__ import annotations

from ..data.transforms import HALF_MEAN, HALF_STD, IMAGENET_MEAN, IMAGENET_STD
from .dlib_resnet import DLIB_FILE, DLIB_PIXEL_MEAN, min_input_size

#: dlib's (pixel - mean) / 256 on 0..255 RGB, written for [0, 1] images
DLIB_MEAN = tuple(m / 255 for m in DLIB_PIXEL_MEAN)
DLIB_STD = (256 / 255,) * 3


def random_init(mean=IMAGENET_MEAN, std=IMAGENET_STD, input_size: int = 224, min_input_size: int = 1,
                source: str = "") -> dict:
    """The entry of a backbone without weights (``weights=None``) or with a user checkpoint file."""
    return {"mean": tuple(mean), "std": tuple(std), "input_size": input_size, "min_input_size": min_input_size,
            "trained_on": None, "provenance": "random initialisation (Kaiming)", "licence": None,
            "package": None, "file": None, "install": None, "source": source}


RESNET = random_init(source="torchvision layout; MS-Celeb R18 of RUL/EAC/SCN (state_dict, optional module.)")
RESNET_CAFFE = random_init(min_input_size=3,
                           source="VGGFace2 resnet50_ft_weight.pkl (EAC): stride on 1x1, ceil-mode maxpool")
# DMUE's released MS-Celeb R18 expects [-1, 1] inputs: mean = std = 0.5
RESNET_DMUE = random_init(HALF_MEAN, HALF_STD, min_input_size=3,
                          source="DMUE MS-Celeb mv_epoch_*.pt: no stem ReLU, 2x2 maxpool")
RESNET_SMALL = random_init(source="small ResNet for CPU presets ([1,1,1,1] BasicBlocks)")

# the same network from random init keeps dlib's normalisation, so that pretrained vs random
# init differ only in the weights
DLIB_RANDOM = random_init(DLIB_MEAN, DLIB_STD, input_size=150, min_input_size=min_input_size(),
                          source=f"dlib's {DLIB_FILE} or another .dat of that network; ferlab checkpoints")
DLIB_FACE = {
    **DLIB_RANDOM,
    "trained_on": "about 3 M faces of 7,485 identities (FaceScrub, VGG Face, scraped images), metric loss; "
                  "LFW 99.38%",
    "provenance": "Davis King (dlib), trained from scratch; face-recognition-models' "
                  f"{DLIB_FILE}, read by ferlab.models.dlib_format (no dlib at run time)",
    "licence": "public domain (dlib-models README) / CC0 1.0 (the package's LICENSE file; its metadata says "
               "MIT, which contradicts the LICENSE file, the stronger statement)",
    "package": "face_recognition_models", "file": f"models/{DLIB_FILE}", "install": "pip install 'ferlab[landmarks]'",
}
