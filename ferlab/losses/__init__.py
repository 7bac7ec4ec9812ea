"""Method losses, one concept per module."""
from .flip_attention import class_activation_maps, flip_attention_consistency
from .pairwise_uncertainty import (
                                   PairwiseConfidence,
                                   class_similarity_profile,
                                   latent_distribution_target,
                                   similarity_preserving_loss,
                                   soft_label_loss,
)
from .uncertainty_mixup import add_up_loss, sample_uncertainty, uncertainty_mixup

__all__ = ["class_activation_maps", "flip_attention_consistency", "add_up_loss", "sample_uncertainty",
           "uncertainty_mixup", "PairwiseConfidence", "class_similarity_profile", "latent_distribution_target",
           "similarity_preserving_loss", "soft_label_loss"]
