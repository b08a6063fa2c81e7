#!/usr/bin/python3
"""Train the ResNet-18 of "Dive into Deep Learning" on Fashion-MNIST and export it for nnc.

usage: /usr/bin/python3 tools/train_fashion.py [--out models/weights/fashion_resnet18.safetensors]
           [--epochs 6] [--batch-size 128] [--lr 0.05] [--seed 0] [--threads 2] [--dtype F16|F32]
           [--data DIR]

The model is d2l's (section 8.6, "Residual Networks"), built exactly as the book does, so the
state_dict keys are the book's: `0.0.weight` (b1's 7x7 convolution), `1.0.conv1.weight` (b2's
first Residual), ..., `7.weight` (the classifier). models/fashion_resnet18.net is the same
network in nnc's language and loads the exported file unchanged.

Data: Debian's dataset-fashion-mnist (/usr/share/datasets/fashion-mnist, IDX files, gzip), at
28x28, one channel, scaled to [0, 1] then normalised with the training set's mean and standard
deviation, (x - 0.2860) / 0.3530 (MEAN and STD below; the demo and the tests do the same).

Training: SGD with Nesterov momentum 0.9, weight decay 5e-4, a one-cycle learning-rate schedule
peaking at --lr, batches of 128, random horizontal flips and random shifts of up to 2 pixels
(zero padding), cross-entropy loss. Everything is seeded and runs on --threads threads with
deterministic algorithms, so a run reproduces the same weights on the same machine and thread
count. Progress is printed per epoch; at the end the test accuracy of the float32 model and of
the exported (--dtype) weights, and the wall time.

Output: a safetensors file of the whole state_dict (num_batches_tracked included, as I64), in
F16 by default (half the size; nnc converts F16 to F32 on load) or F32. Its __metadata__
records the accuracy, the normalisation, the epochs and the seed.
"""

import argparse
import gzip
import os
import struct
import sys
import time

# OpenMP threads that wait spinning are ruinous on a shared machine: when another process holds
# one of the two cores, a step costs 5-8 times the CPU (measured). Waiting threads sleep instead.
# Set before torch loads OpenMP; it does not change the results.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.nn import functional as F  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from safetensors import save_file  # noqa: E402  (tools/safetensors.py)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA_DIR = "/usr/share/datasets/fashion-mnist"
MEAN = 0.2860
STD = 0.3530
CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
           "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


# ---- the model, as in d2l.ai section 8.6 ----

class Residual(nn.Module):
    """The Residual block of ResNet (d2l)."""

    def __init__(self, input_channels, num_channels, use_1x1conv=False, strides=1):
        super().__init__()
        self.conv1 = nn.Conv2d(input_channels, num_channels, kernel_size=3, padding=1, stride=strides)
        self.conv2 = nn.Conv2d(num_channels, num_channels, kernel_size=3, padding=1)
        if use_1x1conv:
            self.conv3 = nn.Conv2d(input_channels, num_channels, kernel_size=1, stride=strides)
        else:
            self.conv3 = None
        self.bn1 = nn.BatchNorm2d(num_channels)
        self.bn2 = nn.BatchNorm2d(num_channels)

    def forward(self, X):
        Y = F.relu(self.bn1(self.conv1(X)))
        Y = self.bn2(self.conv2(Y))
        if self.conv3:
            X = self.conv3(X)
        Y += X
        return F.relu(Y)


def resnet_block(input_channels, num_channels, num_residuals, first_block=False):
    blk = []
    for i in range(num_residuals):
        if i == 0 and not first_block:
            blk.append(Residual(input_channels, num_channels, use_1x1conv=True, strides=2))
        else:
            blk.append(Residual(num_channels, num_channels))
    return blk


def build_model():
    """d2l's ResNet-18 for one input channel and 10 classes: an nn.Sequential, keys 0..7."""
    b1 = nn.Sequential(nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3),
                       nn.BatchNorm2d(64), nn.ReLU(),
                       nn.MaxPool2d(kernel_size=3, stride=2, padding=1))
    b2 = nn.Sequential(*resnet_block(64, 64, 2, first_block=True))
    b3 = nn.Sequential(*resnet_block(64, 128, 2))
    b4 = nn.Sequential(*resnet_block(128, 256, 2))
    b5 = nn.Sequential(*resnet_block(256, 512, 2))
    return nn.Sequential(b1, b2, b3, b4, b5,
                         nn.AdaptiveAvgPool2d((1, 1)),
                         nn.Flatten(), nn.Linear(512, 10))


# ---- data ----

def read_idx(path):
    """An IDX file (gzip or not) -> numpy uint8 array of its shape."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    zero, dtype, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype != 0x08:
        raise ValueError(f"{path}: not an IDX file of unsigned bytes")
    shape = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    arr = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if arr.size != int(np.prod(shape)):
        raise ValueError(f"{path}: expected {shape}, found {arr.size} bytes")
    return arr.reshape(shape)


def find_file(data_dir, stem):
    for name in (stem + ".gz", stem):
        path = os.path.join(data_dir, name)
        if os.path.exists(path):
            return path
    raise FileNotFoundError(f"{stem}(.gz) not found in {data_dir} "
                            "(apt-get install dataset-fashion-mnist)")


def load_split(data_dir, split):
    """split 'train' or 't10k' -> (images float32 [N, 1, 28, 28] normalised, labels int64 [N])."""
    images = read_idx(find_file(data_dir, f"{split}-images-idx3-ubyte"))
    labels = read_idx(find_file(data_dir, f"{split}-labels-idx1-ubyte"))
    return normalise(images), torch.from_numpy(labels.astype(np.int64))


def normalise(images_u8):
    """uint8 [N, 28, 28] -> float32 tensor [N, 1, 28, 28], (x / 255 - MEAN) / STD."""
    x = torch.from_numpy(images_u8.astype(np.float32) / 255.0)
    return ((x - MEAN) / STD).unsqueeze(1).contiguous()


def augment(x, gen, shift=2):
    """Random horizontal flips and random shifts of up to `shift` pixels, per image."""
    n, _, h, w = x.shape
    flip = torch.rand(n, generator=gen) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(3), x)
    background = -MEAN / STD  # a black pixel, normalised
    padded = F.pad(x, (shift, shift, shift, shift), value=background)
    dy = torch.randint(0, 2 * shift + 1, (n,), generator=gen)
    dx = torch.randint(0, 2 * shift + 1, (n,), generator=gen)
    rows = (dy[:, None] + torch.arange(h))[:, None, :, None].expand(n, 1, h, w + 2 * shift)
    cols = (dx[:, None] + torch.arange(w))[:, None, None, :].expand(n, 1, h, w)
    return padded.gather(2, rows).gather(3, cols)


@torch.no_grad()
def predict(model, x, batch=500):
    model.eval()
    return torch.cat([model(x[i:i + batch]).argmax(1) for i in range(0, len(x), batch)])


def accuracy(model, x, y):
    return (predict(model, x) == y).float().mean().item()


def round_state_dict(state, dtype):
    """The state_dict as numpy arrays, float tensors rounded to `dtype` ('F16' or 'F32')."""
    out = {}
    for k, v in state.items():
        a = v.detach().cpu().numpy()
        if a.dtype == np.float32 and dtype == "F16":
            if np.abs(a).max(initial=0) > 65504:
                raise ValueError(f"{k}: values beyond the F16 range; use --dtype F32")
            a = a.astype(np.float16)
        out[k] = a
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=os.path.join(ROOT, "models", "weights", "fashion_resnet18.safetensors"))
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--lr", type=float, default=0.05, help="peak learning rate")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--shift", type=int, default=2, help="random shifts of up to this many pixels (0: none)")
    ap.add_argument("--dtype", choices=["F16", "F32"], default="F16")
    ap.add_argument("--data", default=DATA_DIR)
    ap.add_argument("--train-images", type=int, default=0, metavar="N",
                    help="train on the first N images only (a quick check; default all)")
    args = ap.parse_args()

    start = time.time()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    torch.use_deterministic_algorithms(True)

    train_x, train_y = load_split(args.data, "train")
    test_x, test_y = load_split(args.data, "t10k")
    if args.train_images > 0:
        train_x, train_y = train_x[:args.train_images], train_y[:args.train_images]
    print(f"data: {len(train_x)} training and {len(test_x)} test images from {args.data}", flush=True)

    model = build_model()
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: d2l ResNet-18, {n_params} parameters, {args.threads} threads, seed {args.seed}", flush=True)

    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
    steps_per_epoch = (len(train_x) + args.batch_size - 1) // args.batch_size
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, epochs=args.epochs,
                                                steps_per_epoch=steps_per_epoch)
    gen = torch.Generator().manual_seed(args.seed)

    for epoch in range(args.epochs):
        t0 = time.time()
        model.train()
        order = torch.randperm(len(train_x), generator=gen)
        total_loss = correct = seen = 0
        for i in range(0, len(train_x), args.batch_size):
            idx = order[i:i + args.batch_size]
            x, y = augment(train_x[idx], gen, args.shift), train_y[idx]
            out = model(x)
            loss = F.cross_entropy(out, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total_loss += loss.item() * len(idx)
            correct += (out.argmax(1) == y).sum().item()
            seen += len(idx)
            step = i // args.batch_size + 1
            if step % 100 == 0:
                print(f"  epoch {epoch + 1}, step {step}/{steps_per_epoch}: loss {total_loss / seen:.4f}, "
                      f"{time.time() - t0:.0f} s", flush=True)
        test_acc = accuracy(model, test_x, test_y)
        print(f"epoch {epoch + 1}/{args.epochs}: loss {total_loss / seen:.4f}, "
              f"train accuracy {100 * correct / seen:.2f} %, test accuracy {100 * test_acc:.2f} %, "
              f"{time.time() - t0:.0f} s (total {time.time() - start:.0f} s)", flush=True)

    model.eval()
    acc32 = accuracy(model, test_x, test_y)
    tensors = round_state_dict(model.state_dict(), args.dtype)
    # the accuracy of the weights as exported (rounded to F16, read back as F32)
    model.load_state_dict({k: torch.from_numpy(np.asarray(v, dtype=np.float32) if v.dtype == np.float16 else v)
                           for k, v in tensors.items()}, strict=True)
    acc_out = accuracy(model, test_x, test_y)
    elapsed = time.time() - start

    metadata = {
        "model": "d2l ResNet-18 (d2l.ai 8.6), 1 channel, 28x28, 10 classes",
        "dataset": "Fashion-MNIST",
        "classes": ",".join(CLASSES),
        "normalise": f"(x / 255 - {MEAN}) / {STD}",
        "epochs": str(args.epochs),
        "batch_size": str(args.batch_size),
        "seed": str(args.seed),
        "threads": str(args.threads),
        "torch": torch.__version__,
        "dtype": args.dtype,
        "test_accuracy_f32": f"{acc32:.4f}",
        "test_accuracy": f"{acc_out:.4f}",
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    tmp = args.out + ".tmp"
    save_file(tensors, tmp, metadata=metadata)
    os.replace(tmp, args.out)
    print(f"test accuracy: {100 * acc32:.2f} % (float32), {100 * acc_out:.2f} % ({args.dtype} weights)")
    print(f"wrote {args.out} ({os.path.getsize(args.out) / 1e6:.1f} MB, {args.dtype})")
    print(f"wall time: {elapsed:.0f} s ({elapsed / 60:.1f} min)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
