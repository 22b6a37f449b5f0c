"""Torch networks for the NSGA-Net search spaces.

Submodules: `operations` (cell operations), `genotypes` (published cells, pure Python),
`nsganet_micro` (cell-based CIFAR/pyramid/ImageNet networks), `nsganet_macro` (phase DAG networks).
Nothing is imported here so that `genotypes` stays importable without torch.
"""
