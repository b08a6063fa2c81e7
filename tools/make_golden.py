#!/usr/bin/python3
"""Write the golden cases of tests/golden/ from PyTorch.

Each case is a small model, tests/golden/NAME.net, and a directory tests/golden/NAME/ holding
seeded random weights (weights.safetensors), inputs (input0.npy, ...) and PyTorch's outputs
(expected0.npy, ...). They are committed, so tests/golden/run_golden.py checks nnc against PyTorch
without PyTorch. Re-run this only when a case changes:

    /usr/bin/python3 tools/make_golden.py [NAME...]
"""
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors  # noqa: E402  (tools/safetensors.py)

GOLDEN = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests", "golden")


def randomise_batchnorm(module, gen):
    for m in module.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            with torch.no_grad():
                m.weight.uniform_(0.5, 1.5, generator=gen)
                m.bias.normal_(0, 0.1, generator=gen)
                m.running_mean.normal_(0, 0.2, generator=gen)
                m.running_var.uniform_(0.5, 1.5, generator=gen)


class Residual(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1)
        self.bn2 = nn.BatchNorm2d(cout)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu((self.down(x) if self.down is not None else x) + y)


class TinyCNN(nn.Module):
    inputs = [(2, 3, 17, 15)]

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 5, 2, 0)
        self.stem_bn = nn.BatchNorm2d(8)
        self.block1 = Residual(8, 8, 1)
        self.block2 = Residual(8, 12, 2)
        self.depthwise = nn.Conv2d(12, 12, 3, 1, 1, groups=12)
        self.fc = nn.Linear(12, 5)

    def forward(self, x):
        x = F.relu(self.stem_bn(self.stem(F.pad(x, (1, 1, 2, 2)))))   # pad=[top 2, left 1, bottom 2, right 1]
        x = F.max_pool2d(x, 3, 2, 1)
        x = self.block2(self.block1(x))
        x = F.avg_pool2d(self.depthwise(x), 2, 1)
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        return [torch.softmax(self.fc(x), -1)]


class TinyEncoder(nn.Module):
    inputs = [(2, 3, 16, 16)]

    def __init__(self):
        super().__init__()
        self.patch = nn.Conv2d(3, 24, 4, 4)
        self.pos = nn.Parameter(torch.randn(1, 16, 24) * 0.5)
        layer = nn.TransformerEncoderLayer(24, 4, 48, dropout=0.0, activation="gelu", batch_first=True)
        self.layers = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False).layers
        self.head = nn.Linear(96, 7)

    def forward(self, x):
        x = self.patch(x).reshape(2, 24, 16).transpose(1, 2) + self.pos
        for layer in self.layers:
            x = layer(x)
        return [self.head(x[:, 0:4].reshape(2, 96) * 0.5), x[:, -1]]


class TinyDecoder(nn.Module):
    inputs = [(1, 6, 16), (1, 9, 16)]

    def __init__(self):
        super().__init__()
        layer = nn.TransformerDecoderLayer(16, 2, 32, dropout=0.0, batch_first=True)
        self.layers = nn.TransformerDecoder(layer, 2).layers

    def forward(self, target, memory):
        mask = torch.triu(torch.full((6, 6), float("-inf")), diagonal=1)
        x = target
        for layer in self.layers:
            x = layer(x, memory, tgt_mask=mask)
        return [x]


class TinyOps(nn.Module):
    inputs = [(2, 3, 4), (4, 5)]

    def forward(self, a, b):
        c = (a @ b) * 0.5 - 1
        d = F.pad(c, (1, 2), value=0.25)
        e = torch.cat([d, -d, torch.sigmoid(d)], 1)
        f = e[:, :, 1::2] / (2 + torch.tanh(e[:, :, 0:1]))
        q = f.transpose(1, 2)
        L = q.shape[1]
        scores = q @ q.transpose(-2, -1) / q.shape[-1] ** 0.5
        scores = scores.masked_fill(torch.triu(torch.ones(L, L, dtype=torch.bool), 1), float("-inf"))
        g = torch.softmax(scores, -1) @ q
        h = torch.softmax(g, 1).reshape(2, 1, 36).expand(2, 3, -1)
        return [F.silu(h) - 1 / (1 + F.relu(h)), F.gelu(f, approximate="tanh")]


CASES = {"tiny_cnn": TinyCNN, "tiny_encoder": TinyEncoder, "tiny_decoder": TinyDecoder, "tiny_ops": TinyOps}


def make(name, cls, seed):
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = cls()
    randomise_batchnorm(model, gen)
    model.eval()
    out = os.path.join(GOLDEN, name)
    os.makedirs(out, exist_ok=True)
    state = {k: v.detach().numpy().astype(np.float32) for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    safetensors.save_file(state, os.path.join(out, "weights.safetensors"))
    inputs = [torch.randn(*shape, generator=gen) for shape in cls.inputs]
    with torch.no_grad():
        outputs = model(*inputs)
    for i, x in enumerate(inputs):
        np.save(os.path.join(out, f"input{i}.npy"), x.numpy().astype(np.float32))
    for i, y in enumerate(outputs):
        np.save(os.path.join(out, f"expected{i}.npy"), y.numpy().astype(np.float32))
    print(f"{name}: {len(state)} weights, {len(inputs)} inputs, {len(outputs)} outputs")


def main():
    names = sys.argv[1:] or list(CASES)
    for i, name in enumerate(names):
        make(name, CASES[name], seed=100 + i)


if __name__ == "__main__":
    main()
