"""TEM, Text-Related Embeddings (paper, section 3.2).

E_m = SelfAtt(E, E, E) + CrossAtt(E, G, G); E_TEM = E + E_m. Text tokens are the only queries,
so image regions never attend (no V->T, no V->V): the fusion stays in the language range.
"""
from __future__ import annotations

import torch
from torch import nn


class TextRelatedEmbeddings(nn.Module):
    def __init__(self, hidden_size: int, image_channels: int, dim: int = 200, softmax: bool = True):
        super().__init__()
        self.scale = dim ** -0.5
        self.softmax = softmax
        self.query = nn.Linear(hidden_size, dim)
        self.text_key = nn.Linear(hidden_size, dim)
        self.text_value = nn.Linear(hidden_size, dim)
        self.image_key = nn.Linear(image_channels, dim)
        self.image_value = nn.Linear(image_channels, dim)
        self.out = nn.Linear(dim, hidden_size)
        # Start as the identity (E_TEM = E) so fine-tuning begins from the pretrained language model.
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def _attend(self, scores: torch.Tensor, key_mask: torch.Tensor) -> torch.Tensor:
        if self.softmax:
            return scores.masked_fill(~key_mask[:, None, :], float("-inf")).softmax(-1)
        return scores * key_mask[:, None, :]  # the authors' unnormalised variant

    def forward(self, embeddings: torch.Tensor, text_mask: torch.Tensor, regions: torch.Tensor | None = None,
                has_image: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """embeddings (B, T, H), text_mask (B, T) bool, regions (B, R, C) -> (E_TEM, cross attention (B, T, R))."""
        q = self.query(embeddings)
        self_att = self._attend(q @ self.text_key(embeddings).transpose(1, 2) * self.scale, text_mask)
        fused = self_att @ self.text_value(embeddings)
        cross_att = None
        if regions is not None:
            region_mask = torch.ones(regions.shape[:2], dtype=torch.bool, device=regions.device)
            cross_att = self._attend(q @ self.image_key(regions).transpose(1, 2) * self.scale, region_mask)
            cross = cross_att @ self.image_value(regions)
            if has_image is not None:
                cross = cross * has_image[:, None, None].to(cross.dtype)
            fused = fused + cross
        return embeddings + self.out(fused), cross_att
