"""The recipe's building blocks: the closed Section base and the numeric ranges every section uses.

Kept apart from config.py so that method sections (config/methods.py) and the top-level schema can
both import them without a cycle.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

# Numeric ranges, checked when the recipe is read so a bad value never reaches the code (a zero batch
# divides by zero); pydantic's message states the range ("Input should be greater than 0").
Positive = Annotated[int, Field(gt=0)]
NonNegative = Annotated[int, Field(ge=0)]
PositiveFloat = Annotated[float, Field(gt=0)]
NonNegFloat = Annotated[float, Field(ge=0)]
Ratio = Annotated[float, Field(ge=0, le=1)]  # a share: 0 to 1 inclusive
Beta = Annotated[float, Field(ge=0, lt=1)]  # an Adam moment decay rate: [0, 1)
DEFAULT_MAX_ROW_BYTES = 1 << 20


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)
