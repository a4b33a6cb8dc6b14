"""The trace worker's warm-up after `import torch`, in named parts, and which of them a plan's trace needs.

The worker runs a part once, before it forks the children that would each pay it again. `shapelens check`
of several files names the parts its pool shares before the fork (from the first plan it builds); the worker
warms any other part before the first child whose plan needs it, and never a part no plan needs. The
editor's worker warms all of them after its first reply.
"""

from __future__ import annotations

from shapelens.core.wire import TracePlan

# In the order they run: the common layers' meta kernels; FakeTensorMode's first use (it imports
# torch._dynamo); the solver's first pass (#8); the symbolic forms' first pass (#13)
PARTS = ("meta", "fake", "solve", "forms")


def needs(plan: TracePlan) -> list[str]:
    """The parts a plan's trace child would otherwise pay for itself, in PARTS order.

    - FakeTensorMode and the solver where a model's inputs are guessed: the plain guess fails on a classifier
      whose Linear fixes the image size, and its free sizes are solved under FakeTensorMode.
    - FakeTensorMode and the forms' pass where the output shows the forms (#13: JSON version 2, the editor's
      symbolic hints).

    A plan whose inputs are all given, for text output, needs only the meta kernels."""
    if not plan.targets:
        return []
    parts = {"meta"}
    if any(target.infer_from is not None for target in plan.targets):
        parts |= {"fake", "solve"}
    if plan.symbolic:
        parts |= {"fake", "forms"}
    return [part for part in PARTS if part in parts]
