"""TEM: E_TEM = E + out(SelfAtt(E) + CrossAtt(E, G)), text tokens as the only queries."""
from __future__ import annotations

import torch

from dram.nn.tem import TextRelatedEmbeddings

B, T, H, R, C = 2, 5, 12, 9, 6


def _inputs(seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    embeddings = torch.randn(B, T, H, generator=generator)
    regions = torch.randn(B, R, C, generator=generator)
    mask = torch.tensor([[True] * 5, [True, True, True, False, False]])
    return embeddings, mask, regions


def _tem(softmax: bool = True, live: bool = True) -> TextRelatedEmbeddings:
    torch.manual_seed(0)
    tem = TextRelatedEmbeddings(H, C, dim=8, softmax=softmax)
    if live:  # a non-zero output layer, as after some training
        torch.nn.init.normal_(tem.out.weight)
        torch.nn.init.normal_(tem.out.bias)
    return tem


def test_zero_initialised_output_is_the_identity() -> None:
    tem = _tem(live=False)
    embeddings, mask, regions = _inputs()
    out, cross = tem(embeddings, mask, regions, torch.tensor([True, True]))
    assert torch.equal(out, embeddings)
    assert cross is not None


def test_cross_attention_shape_and_rows_sum_to_one() -> None:
    embeddings, mask, regions = _inputs()
    out, cross = _tem()(embeddings, mask, regions)
    assert out.shape == (B, T, H)
    assert cross.shape == (B, T, R)
    torch.testing.assert_close(cross.sum(-1), torch.ones(B, T))
    assert torch.all(cross >= 0)


def test_without_regions_there_is_no_cross_attention() -> None:
    embeddings, mask, _ = _inputs()
    out, cross = _tem()(embeddings, mask)
    assert cross is None and out.shape == (B, T, H)


def test_padded_keys_get_zero_self_attention_weight() -> None:
    tem = _tem()
    seen = []
    original = tem._attend
    tem._attend = lambda scores, key_mask: seen.append(original(scores, key_mask)) or seen[-1]
    embeddings, mask, regions = _inputs()
    tem(embeddings, mask, regions)
    self_att = seen[0]
    assert self_att.shape == (B, T, T)
    assert torch.all(self_att[1, :, 3:] == 0)
    torch.testing.assert_close(self_att.sum(-1), torch.ones(B, T))


def test_padding_content_does_not_change_real_tokens() -> None:
    tem = _tem()
    embeddings, mask, regions = _inputs()
    changed = embeddings.clone()
    changed[1, 3:] = 100.0
    a, _ = tem(embeddings, mask, regions)
    b, _ = tem(changed, mask, regions)
    torch.testing.assert_close(a[1, :3], b[1, :3])
    assert not torch.allclose(a[1, 3:], b[1, 3:])  # the test would notice a change


def test_has_image_false_removes_the_image_contribution() -> None:
    tem = _tem()
    embeddings, mask, regions = _inputs()
    text_only, _ = tem(embeddings, mask)
    out, _ = tem(embeddings, mask, regions, torch.tensor([True, False]))
    torch.testing.assert_close(out[1], text_only[1])
    assert not torch.allclose(out[0], text_only[0])  # the photo does contribute where present


def test_unnormalised_variant_runs_and_masks_padding() -> None:
    tem = _tem(softmax=False)
    seen = []
    original = tem._attend
    tem._attend = lambda scores, key_mask: seen.append(original(scores, key_mask)) or seen[-1]
    embeddings, mask, regions = _inputs()
    out, cross = tem(embeddings, mask, regions, torch.tensor([True, True]))
    assert out.shape == (B, T, H) and torch.isfinite(out).all()
    assert cross.shape == (B, T, R)
    assert not torch.allclose(cross.sum(-1), torch.ones(B, T))  # scaled dot products, not a distribution
    assert torch.all(seen[0][1, :, 3:] == 0)
    out.sum().backward()
    assert tem.query.weight.grad is not None and tem.image_key.weight.grad.abs().sum() > 0
