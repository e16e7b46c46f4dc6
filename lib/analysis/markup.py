"""What the notebooks' HTML and the report's layout (lib.pipeline.layout) agree on: the class of a figure's caption
and a heading's anchor. A module of its own, without plotting or statistics, so the planner's processes start fast."""
from __future__ import annotations

import re

CAPTION = "figure-caption"  # the class the report numbers ('Figure k.') in reading order


def slug(text: str) -> str:
    """A heading's anchor from its words (lib.pipeline.layout gives every heading this id)."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "section"
