"""
s3dnn-convert-weights IN.pth OUT.npz.

Turns a torchvision AlexNet state dict into the .npz the engines load.
"""
from __future__ import annotations

import sys

from .cli import Parser
from ..model.alexnet import alexnet
from ..model.weights import load_torch_state_dict, save_weights, WeightsError


def main(argv: list[str] | None = None) -> int:
    parser = Parser(prog='s3dnn-convert-weights',
                    description='Convert a torchvision alexnet() state dict (.pth) '
                                'into an .npz (needs torch).')
    parser.add_argument('source', metavar='IN.pth',
                        help='torch.save(model.state_dict(), ...) of torchvision alexnet')
    parser.add_argument('target', metavar='OUT.npz', help='where to write the weights')
    args = parser.parse_args(argv)
    try:
        weights = load_torch_state_dict(args.source, alexnet())
    except WeightsError as error:
        print(f's3dnn-convert-weights: error: {error}', file=sys.stderr)
        return 2
    save_weights(args.target, weights)
    print(f'wrote {len(weights)} tensors '
          f'({sum(w.size for w in weights.values()):,} parameters) to {args.target}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
