"""An image captioner in the style of neuraltalk2: a ResNet encoder and an LSTM decoder.

Rebuffi et al. (2020, supplement F) explain a captioning model whose encoder
is a ResNet101 and whose decoder is an LSTM that receives the image's
globally pooled features as its first input (Karpathy's neuraltalk2 recipe;
"show and tell", Vinyals et al., 2015). This module builds that model:

* ``encoder``: torchvision's :class:`~torchvision.models.ResNet` with
  :class:`~torchvision.models.resnet.Bottleneck` blocks and random
  initialisation, without its classification layer (``fc`` is an identity),
  so ``encoder(x)`` is the ``(N, C)`` globally average-pooled ``layer4``
  output. ``depths=(3, 4, 23, 3)`` and ``width=1`` is torchvision's
  ResNet101 exactly; smaller ``depths`` or ``width`` give reduced versions
  whose module paths at the explained layers are the same
  (``encoder.layer3.0.relu``, ``encoder.layer4.0.relu``, ``encoder.layer4``).
* ``decoder``: :class:`CaptionDecoder`: a linear projection of the pooled
  features to the word-embedding size, fed to a one-layer LSTM at step 0;
  then the embeddings of ``<start>, w_1, ..., w_T``; a linear layer maps each
  hidden state to the vocabulary's logits.

Token conventions (:mod:`gsutils.data.captions`): 0 ``<pad>``, 1 ``<start>``,
2 ``<end>``, 3 ``<unk>``.

Shapes: images ``(N, 3, H, W)`` normalised with ImageNet statistics; token
ids ``(N, T)`` int64 (``<pad>``-padded, without ``<start>``, ending with
``<end>``); logits ``(N, T, V)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from gsutils.models.classifiers import NarrowResNet

PAD, START, END, UNK = 0, 1, 2, 3

#: The layers whose selective NormGrad maps are combined (supplement F): the
#: ReLU after the downsampling shortcut of the third and of the fourth macro
#: block (the first block's ReLU is called three times; its last call follows
#: the addition of the shortcut), and ``layer4``'s output, the input of the
#: final global average pooling.
EXPLAINED_LAYERS: tuple[str, ...] = ("encoder.layer3.0.relu", "encoder.layer4.0.relu", "encoder.layer4")

RESNET101_DEPTHS = (3, 4, 23, 3)


class _ResNetEncoder(NarrowResNet):
    """:class:`~gsutils.models.classifiers.NarrowResNet` without a head, residual branches starting at zero
    (which trains from scratch faster); returns ``(N, out_features)`` pooled features."""

    def __init__(self, depths: Sequence[int], width: float) -> None:
        super().__init__(list(depths), None, width, zero_init_residual=True)


def build_encoder(depths: Sequence[int] = RESNET101_DEPTHS, width: float = 1.0, last_stride: int = 2) -> nn.Module:
    """A randomly initialised ResNet encoder returning ``(N, C)`` pooled features.

    Parameters
    ----------
    depths:
        Bottleneck blocks in ``layer1`` .. ``layer4``; ``(3, 4, 23, 3)`` is
        ResNet101. ``layer3`` needs at least one block and ``layer4`` at least
        two, so that ``layer4.0.relu`` (after the shortcut) and ``layer4``
        (before the pooling) are different layers.
    width:
        Channel multiplier in ``(0, 1]``.
    last_stride:
        Stride of ``layer4``'s first block (its 3x3 convolution and shortcut);
        1 keeps ``layer4`` at ``layer3``'s resolution (parameter shapes unchanged).
    """
    depths = tuple(int(d) for d in depths)
    if len(depths) != 4 or min(depths) < 1:
        raise ValueError(f"depths must be four positive block counts (ResNet101: {RESNET101_DEPTHS}), "
                         f"got {depths}")
    if depths[3] < 2:
        raise ValueError(f"layer4 needs at least 2 blocks (got depths={depths}): with one block "
                         "layer4.0.relu and the input of the global pooling are the same layer")
    if isinstance(width, bool) or not isinstance(width, (int, float)) or not 0 < width <= 1:
        raise ValueError(f"width must be a float in (0, 1], got {width!r}")
    if last_stride not in (1, 2):
        raise ValueError(f"last_stride must be 1 or 2, got {last_stride!r}")
    enc = _ResNetEncoder(depths, float(width))
    block = enc.layer4[0]
    block.conv2.stride = (last_stride, last_stride)
    block.downsample[0].stride = (last_stride, last_stride)
    return enc


class CaptionDecoder(nn.Module):
    """neuraltalk2's LSTM language model conditioned on the image at step 0.

    With ``image_every_step`` the projected image features are also
    concatenated to the word embedding at every step (as in Donahue et al.'s
    LRCN); the LSTM's input is then ``2 * embed_dim`` wide. The LSTM's
    forget-gate biases start at 1 (Jozefowicz et al., 2015).
    """

    def __init__(self, feature_dim: int, vocab_size: int, embed_dim: int, hidden_dim: int,
                 dropout: float = 0.0, image_every_step: bool = False) -> None:
        super().__init__()
        if vocab_size <= UNK:
            raise ValueError(f"vocab_size must exceed the 4 special tokens, got {vocab_size}")
        self.vocab_size = vocab_size
        self.image_every_step = bool(image_every_step)
        self.image_proj = nn.Linear(feature_dim, embed_dim)
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=PAD)
        self.lstm = nn.LSTM(embed_dim * (2 if self.image_every_step else 1), hidden_dim, batch_first=True)
        with torch.no_grad():  # gates are ordered input, forget, cell, output
            for name in ("bias_ih_l0", "bias_hh_l0"):
                getattr(self.lstm, name)[hidden_dim:2 * hidden_dim].fill_(0.5)  # sum: 1
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(hidden_dim, vocab_size)

    def _inputs(self, img: torch.Tensor, words: torch.Tensor) -> torch.Tensor:
        """LSTM inputs ``(N, L, E or 2E)`` from the projected image ``(N, 1, E)`` and words ``(N, L, E)``."""
        if not self.image_every_step:
            return words
        return torch.cat([words, img.expand(-1, words.shape[1], -1)], dim=2)

    def forward(self, features: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Teacher-forced logits ``(N, T, V)`` of ``tokens`` ``(N, T)`` given ``features`` ``(N, C)``.

        Step 0 reads the image, step 1 ``<start>``, step ``t + 1`` the word
        ``tokens[:, t - 1]``; the output of step ``t + 1`` predicts ``tokens[:, t]``.
        """
        n = tokens.shape[0]
        start = torch.full((n, 1), START, dtype=torch.long, device=tokens.device)
        img = self.image_proj(features).unsqueeze(1)  # (N, 1, E)
        seq = torch.cat([img, self.embed(torch.cat([start, tokens[:, :-1]], dim=1))], dim=1)  # (N, T + 1, E)
        h, _ = self.lstm(self.dropout(self._inputs(img, seq)))  # (N, T + 1, H)
        return self.out(self.dropout(h[:, 1:]))  # (N, T, V)

    @torch.no_grad()
    def greedy(self, features: torch.Tensor, max_len: int) -> torch.Tensor:
        """Greedy decoding: ``(N, L)`` token ids, ``<pad>`` after the first ``<end>``."""
        n = features.shape[0]
        img = self.image_proj(features).unsqueeze(1)  # (N, 1, E)
        _, state = self.lstm(self._inputs(img, img))  # read the image
        word = torch.full((n,), START, dtype=torch.long, device=features.device)
        out = torch.full((n, max_len), PAD, dtype=torch.long, device=features.device)
        done = torch.zeros(n, dtype=torch.bool, device=features.device)
        for t in range(max_len):
            h, state = self.lstm(self._inputs(img, self.embed(word).unsqueeze(1)), state)  # (N, 1, H)
            logits = self.out(h[:, 0])  # (N, V)
            logits[:, PAD] = -float("inf")
            logits[:, START] = -float("inf")
            word = logits.argmax(dim=1)  # (N,)
            out[:, t] = torch.where(done, torch.full_like(word, PAD), word)
            done |= word == END
            if bool(done.all()):
                break
        return out


class Captioner(nn.Module):
    """``encoder`` (ResNet) + ``decoder`` (:class:`CaptionDecoder`) (+ optional ``attributes`` head)."""

    def __init__(self, vocab_size: int, *, depths: Sequence[int] = RESNET101_DEPTHS, width: float = 1.0,
                 embed_dim: int = 512, hidden_dim: int = 512, dropout: float = 0.0,
                 image_every_step: bool = False, attribute_head: bool = False, last_stride: int = 2) -> None:
        super().__init__()
        self.encoder = build_encoder(depths, width, last_stride)
        self.decoder = CaptionDecoder(self.encoder.out_features, vocab_size, embed_dim, hidden_dim, dropout,
                                      image_every_step)
        #: optional training aid (attributes, Yao et al., 2017): a linear layer on the pooled
        #: features that predicts which words the caption holds; captions never use it
        self.attributes = nn.Linear(self.encoder.out_features, vocab_size) if attribute_head else None

    def forward(self, images: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Teacher-forced logits ``(N, T, V)``."""
        return self.decoder(self.encoder(images), tokens)

    @torch.no_grad()
    def generate(self, images: torch.Tensor, max_len: int) -> torch.Tensor:
        """Greedy captions ``(N, L)`` (see :meth:`CaptionDecoder.greedy`)."""
        return self.decoder.greedy(self.encoder(images), max_len)


def token_log_probs(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """``log p(tokens[:, t] | ...)`` per step ``(N, T)``, zero at ``<pad>``."""
    logp = torch.log_softmax(logits, dim=-1)  # (N, T, V)
    picked = logp.gather(2, tokens.unsqueeze(2)).squeeze(2)  # (N, T)
    return picked * (tokens != PAD).to(picked.dtype)


class CaptionLogProb(nn.Module):
    """The explained score: the log-probability of given captions, as a ``(N, 1)`` "logit".

    Wrapping a :class:`Captioner` with fixed ``tokens`` ``(N, T)`` makes the
    captioner look like a one-output classifier to the Extract & Aggregate
    engine (:func:`gsutils.saliency.extract_aggregate.extract_aggregate` with
    ``target=0``): the backward signal is then ``d log p(caption | image)``.
    With ``word`` set, the score is the log-probability of the word at that
    position alone (``log p(w_word | image, w_<word)``). The captioner's
    ``encoder`` and ``decoder`` are registered under the same names, so layer
    paths are the captioner's (``encoder.layer4``).
    """

    def __init__(self, captioner: Captioner, tokens: torch.Tensor, word: int | None = None) -> None:
        super().__init__()
        if tokens.dim() != 2:
            raise ValueError(f"tokens must be (N, T) token ids, got shape {tuple(tokens.shape)}")
        if word is not None and not 0 <= word < tokens.shape[1]:
            raise ValueError(f"word must index a position in 0..{tokens.shape[1] - 1}, got {word}")
        self.encoder = captioner.encoder
        self.decoder = captioner.decoder
        self.register_buffer("tokens", tokens.long(), persistent=False)
        self.word = word

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.shape[0] != self.tokens.shape[0]:
            raise ValueError(f"{images.shape[0]} images but {self.tokens.shape[0]} captions")
        lp = token_log_probs(self.decoder(self.encoder(images), self.tokens), self.tokens)  # (N, T)
        score = lp.sum(dim=1) if self.word is None else lp[:, self.word]
        return score.unsqueeze(1)  # (N, 1)


__all__ = [
    "PAD", "START", "END", "UNK",
    "EXPLAINED_LAYERS",
    "RESNET101_DEPTHS",
    "build_encoder",
    "CaptionDecoder",
    "Captioner",
    "token_log_probs",
    "CaptionLogProb",
]
