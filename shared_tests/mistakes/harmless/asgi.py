# Planted by the grader (stage 6): a name the application does not use; it behaves the same.
from channels.security.websocket import OriginValidator as _PlantedOriginValidator

_planted_valid_origin_before = _PlantedOriginValidator.valid_origin
_PlantedOriginValidator.valid_origin = _planted_valid_origin_before
