"""Benchmarks that compare trained components on held-out truth (`geneface bench ...`).

- `adapters`: domain adapters side by side on a person's held-out clips (or a test set of the
  same person): mouth statistics, LMD and landmark distance against the truth, lip sync.

Each benchmark is a plain function returning a JSON-ready dict plus a markdown rendering of
it; the CLI (`geneface/cli/cmd_bench.py`) only parses flags, checks the output and writes.
"""
