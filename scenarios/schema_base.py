"""Building blocks of the scenario schema: strict models and per-segment tables."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

SEGMENTS = ("youth", "adult", "elderly")
Weekday = Literal["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class PerSegment(Strict):
    """One number per resident segment (youth 18-34, adult 35-59, elderly 60+)."""

    youth: float = Field(ge=0)
    adult: float = Field(ge=0)
    elderly: float = Field(ge=0)

    def get(self, segment: str) -> float:
        return float(getattr(self, segment))


class Shares(PerSegment):
    """Fractions in [0, 1], one per segment."""

    youth: float = Field(ge=0, le=1)
    adult: float = Field(ge=0, le=1)
    elderly: float = Field(ge=0, le=1)
