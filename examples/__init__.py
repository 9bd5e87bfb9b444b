"""Worked examples of maml-tf2 on a user's own network and data (see examples/README.md)."""
