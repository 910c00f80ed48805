"""Every YAML file a user hands us (pipeline specs, `train --config`), read one safe way.

`yaml.safe_load` builds no objects, but it still expands aliases: nine levels of nine aliases
in 700 bytes are 387 million values, which fill memory while being built or walked (an "alias
bomb"). `load_yaml` counts what the aliases expand to on the node graph, before building
anything, and refuses past MAX_YAML_VALUES in one line naming the anchor.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import yaml

from geneface.errors import SpecError

# A spec or a training config holds a few dozen values. Aliases may repeat an anchored value,
# but not multiply the document past this.
MAX_YAML_VALUES = 100_000


def _expanded_values(root: yaml.Node) -> tuple[int, Optional[yaml.Node]]:
    """How many values the node graph expands to (capped just above MAX_YAML_VALUES; a node
    that contains itself counts as too many) and the first node reached twice (an anchor)."""
    sizes: dict[int, int] = {}
    active: set[int] = set()
    shared: list[yaml.Node] = []

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key in sizes or key in active:
            if not shared:
                shared.append(node)
            return sizes.get(key, MAX_YAML_VALUES + 1)  # in `active`: an alias inside its own anchor
        active.add(key)
        total = 1
        if isinstance(node, yaml.SequenceNode):
            children = node.value
        elif isinstance(node, yaml.MappingNode):
            children = [item for pair in node.value for item in pair]
        else:
            children = []
        for child in children:
            total = min(total + size(child), MAX_YAML_VALUES + 1)
        active.discard(key)
        sizes[key] = total
        return total

    return size(root), (shared[0] if shared else None)


def load_yaml(text: str, path: Path, what: str = "document") -> Any:
    """`yaml.safe_load` of `text` (read from `path`), refusing a document whose aliases expand
    it past MAX_YAML_VALUES (SpecError naming the anchor; `what` names the document in it).
    Syntax errors are yaml.YAMLError, for the caller to word."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        try:
            total, anchor = _expanded_values(node)
        except RecursionError:
            raise SpecError(f"{path}: the YAML is nested too deeply") from None
        if total > MAX_YAML_VALUES:
            mark = anchor.start_mark if anchor is not None else node.start_mark
            raise SpecError(f"{path}:{mark.line + 1}:{mark.column + 1}: YAML aliases of the anchor here expand the "
                            f"{what} past {MAX_YAML_VALUES} values or into itself; write the values out instead")
        return loader.construct_document(node)
    finally:
        loader.dispose()
