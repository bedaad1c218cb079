"""Small models shared by the saliency tests."""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models import vgg as tv_vgg


class SmallVGG(nn.Module):
    """torchvision's VGG forward and module names (features / avgpool / classifier),
    few channels, in-place ReLUs."""

    def __init__(self, num_classes: int = 5) -> None:
        super().__init__()
        self.features = tv_vgg.make_layers([6, "M", 8, 8, "M", 12, "M"])
        self.avgpool = nn.AdaptiveAvgPool2d((2, 2))
        self.classifier = nn.Sequential(
            nn.Linear(12 * 4, 16), nn.ReLU(True), nn.Dropout(),
            nn.Linear(16, 16), nn.ReLU(True), nn.Dropout(),
            nn.Linear(16, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = self.avgpool(x)
        return self.classifier(torch.flatten(x, 1))
