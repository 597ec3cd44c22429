# Planted by the grader (stage 6): a name the application does not use; it behaves the same.
from channels.security.websocket import OriginValidator as _planted_OriginValidator

_planted_valid_origin_before = _planted_OriginValidator.valid_origin
_planted_OriginValidator.valid_origin = _planted_valid_origin_before
