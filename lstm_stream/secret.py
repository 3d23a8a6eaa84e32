"""A credential in settings: never shown by repr/str, so it cannot leak into logs or errors.

>>> token = Secret("hunter2")
>>> token, str(token), token.get()
(Secret('**********'), "Secret('**********')", 'hunter2')
"""

from __future__ import annotations

__all__ = ["Secret"]


class Secret:
    """A credential: never shown by repr/str, so it cannot leak into logs or errors."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __repr__(self) -> str:
        return "Secret('**********')" if self._value else "Secret('')"

    __str__ = __repr__
