"""DomainAdapter `identity`: hands the generic motion on unchanged.

The baseline every person-specific adapter is compared with, and a way to write a spec that
names all four stages while skipping adaptation. Nothing to fit: the motion keeps its own
statistics (`mean`/`std`), so the renderer reads it exactly as the generator made it.
Streams exactly with no context.
"""

from __future__ import annotations

from geneface import hookimpl
from geneface.core.records import Motion
from geneface.core.stages import DomainAdapter, StreamContext
from geneface.errors import StageMismatchError


class IdentityAdapter(DomainAdapter):
    name = "identity"
    description = "Pass-through: the generic motion unchanged (the baseline for person-specific adapters)"

    def stream_context(self) -> StreamContext:
        return StreamContext(0, 0)

    def adapt(self, motion: Motion) -> Motion:
        problem = self.check_input(motion)
        if problem:
            raise StageMismatchError(f"domain_adapter '{self.name}': {problem}")
        return motion  # records are frozen: handing on the same object is safe


@hookimpl
def register_domain_adapters(register):
    register(IdentityAdapter)
