"""Mesa agents of the cashless city: residents, merchants, and the CityModel."""

from agents.merchants import Merchant
from agents.model import CityModel
from agents.recorder import EVENT_SCHEMA, EventLog, Outcome
from agents.residents import Resident

__all__ = ["EVENT_SCHEMA", "CityModel", "EventLog", "Merchant", "Outcome", "Resident"]
