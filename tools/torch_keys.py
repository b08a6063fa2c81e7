#!/usr/bin/python3
"""Print a torchvision model's weight keys and shapes, one per line, in state_dict order:

    conv1.weight [64, 3, 7, 7]
    bn1.weight [64]

as `nnc FILE.net --emit weights` does; num_batches_tracked is left out (nnc ignores it).

usage: torch_keys.py NAME [--kwargs JSON]

NAME and --kwargs are as for export_torchvision.py: a builder (resnet50, vit_b_16) or a
class (vit, ResNet) of torchvision.models with its keyword arguments.
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from export_torchvision import construct  # noqa: E402


def keys(name, kwargs=None):
    """[(key, shape list)] of the model's state_dict, less num_batches_tracked."""
    sd = construct(name, kwargs).state_dict()
    return [(k, list(v.shape)) for k, v in sd.items() if not k.endswith("num_batches_tracked")]


def format_key(key, shape):
    return f"{key} [{', '.join(str(d) for d in shape)}]"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                usage="torch_keys.py NAME [--kwargs JSON]")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--kwargs", default="{}", metavar="JSON")
    args = p.parse_args(argv)
    try:
        kwargs = json.loads(args.kwargs)
        if not isinstance(kwargs, dict):
            raise ValueError("--kwargs must be a JSON object")
        for key, shape in keys(args.name, kwargs):
            print(format_key(key, shape))
    except (ValueError, TypeError, KeyError) as e:
        print(f"torch_keys: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
