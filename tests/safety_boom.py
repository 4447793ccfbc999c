"""A sub-command that fails the way an unforeseen bug would (for the CLI's last-resort guard test)."""

from __future__ import annotations


def add_commands(subparsers) -> None:
    parser = subparsers.add_parser("boom", help="raise an unexpected error")
    parser.set_defaults(func=_boom)


def _boom(args) -> int:
    import torch

    torch.zeros(2, 3) @ torch.zeros(2, 3)  # RuntimeError from inside torch: mat1 and mat2 shapes ...
    return 0
